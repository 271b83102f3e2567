import { readFile } from 'node:fs/promises'
import { ClientSecretCredential } from '@azure/identity'
import { DEMO_SEED, type Emulator, startEmulator } from '../../emulator/index.ts'
import { trustCa } from '../../emulator/common/tls.ts'
import { parseSeed, type Seed } from '../../emulator/seed.ts'

/** The demo topology's well-known ids (emulator/seeds/demo.json). */
export const DEMO = {
  tenantA: 'aaaaaaaa-0000-4000-8000-00000000000a',
  tenantB: 'bbbbbbbb-0000-4000-8000-00000000000b',
  tenantC: 'cccccccc-0000-4000-8000-00000000000c',
  deployerAppId: 'd0d0d0d0-0000-4000-8000-0000000000d0',
  brokerAppId: 'e0e0e0e0-0000-4000-8000-0000000000e0',
  requesterAppId: 'f1f1f1f1-0000-4000-8000-0000000000f1',
  adminAppId: 'f4f4f4f4-0000-4000-8000-0000000000f4',
  subscriptionA: 'a1a1a1a1-0000-4000-8000-0000000000a1',
  subscriptionB: 'b1b1b1b1-0000-4000-8000-0000000000b1',
  resourceGroupA: 'rg-network-management',
  resourceGroupB: 'rg-retail-network',
  subscriptionC: 'c1c1c1c1-0000-4000-8000-0000000000c1',
  resourceGroupC: 'rg-logistics-network',
  networkManagerId:
    '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso',
  poolRetail:
    '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso/ipamPools/pool-retail',
  vault: 'kv-ipam-broker',
  deployerSecretName: 'deployer-client-secret',
} as const

export async function demoSeed(): Promise<Seed> {
  return parseSeed(JSON.parse(await readFile(DEMO_SEED, 'utf8')))
}

/** An emulator on free ports whose CA this process trusts, as production trusts Azure's. */
export async function startTestEmulator(seed?: Seed): Promise<Emulator> {
  const emulator = await startEmulator({ seed: seed ?? (await demoSeed()) })
  trustCa(emulator.ca)
  return emulator
}

export function password(emulator: Emulator, appId: string, index = 0): string {
  const secret = emulator.state.applications.get(appId)?.passwords[index]?.secretText
  if (!secret) throw new Error(`no password #${index} for ${appId}`)
  return secret
}

/** A credential exactly as the broker builds one, pointed at the emulator instead of login.microsoftonline.com. */
export function credential(emulator: Emulator, tenantId: string, appId: string, secret = password(emulator, appId)) {
  return new ClientSecretCredential(tenantId, appId, secret, {
    authorityHost: emulator.url,
    disableInstanceDiscovery: true,
  })
}
