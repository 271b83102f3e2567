import { readFile } from 'node:fs/promises'
import { ClientSecretCredential } from '@azure/identity'
import { DEMO_SEED, type Emulator, startEmulator } from '../../emulator/index.ts'
import { trustCa } from '../../emulator/common/tls.ts'
import { DEMO_CALLERS, DEMO_IDS } from '../../emulator/demo-broker.ts'
import { parseSeed, type Seed } from '../../emulator/seed.ts'

/** The demo topology's well-known ids (emulator/seeds/demo.json), as emulator/demo-broker.ts names them. */
export const DEMO = {
  ...DEMO_IDS,
  requesterAppId: DEMO_CALLERS.Requester,
  adminAppId: 'f4f4f4f4-0000-4000-8000-0000000000f4',
  resourceGroupA: 'rg-network-management',
  resourceGroupB: 'rg-retail-network',
  resourceGroupC: 'rg-logistics-network',
  poolRetail: `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`,
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
