import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ClientSecretCredential } from '@azure/identity'
import { trustCa } from './common/tls.ts'
import { DEMO_SEED, type Emulator, startEmulator } from './index.ts'
import { readSeed } from './seed.ts'
import { saveSnapshot } from './snapshot.ts'

// The demo topology as ipam-broker sees it: the emulator started in-process (`npm start` with
// AZURE_CLOUD=emulator), the broker's own identity to its Key Vault, the caller tokens of the demo
// apps, and the registry entries that make the seeded tenants usable through the API.

export const DEMO_IDS = {
  tenantA: 'aaaaaaaa-0000-4000-8000-00000000000a',
  tenantB: 'bbbbbbbb-0000-4000-8000-00000000000b',
  tenantC: 'cccccccc-0000-4000-8000-00000000000c',
  subscriptionA: 'a1a1a1a1-0000-4000-8000-0000000000a1',
  subscriptionB: 'b1b1b1b1-0000-4000-8000-0000000000b1',
  subscriptionC: 'c1c1c1c1-0000-4000-8000-0000000000c1',
  deployerAppId: 'd0d0d0d0-0000-4000-8000-0000000000d0',
  brokerAppId: 'e0e0e0e0-0000-4000-8000-0000000000e0',
  networkManagerId:
    '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso',
  vault: 'kv-ipam-broker',
  deployerSecretName: 'deployer-client-secret',
} as const

/** The demo apps that call the broker, by the app role they hold. */
export const DEMO_CALLERS = {
  Requester: 'f1f1f1f1-0000-4000-8000-0000000000f1',
  Reader: 'f2f2f2f2-0000-4000-8000-0000000000f2',
  Admin: 'f3f3f3f3-0000-4000-8000-0000000000f3',
} as const

export type DemoRole = keyof typeof DEMO_CALLERS

/** Where a running demo emulator says where it listens, beside its state file. */
export function endpointFile(stateFile: string): string {
  return path.join(path.dirname(stateFile), 'endpoint.json')
}

const pool = (name: string) => `${DEMO_IDS.networkManagerId}/ipamPools/${name}`

export interface DemoAzure {
  emulator: Emulator
  url: string
  caFile: string
  /** The broker's own identity to Key Vault (its app registration in tenant A). */
  keyVaultCredential: ClientSecretCredential
  auth: { tenantId: string; audience: string }
  /** A fresh access token for the broker's API, as the demo app holding `role`. */
  token(role: DemoRole): Promise<string>
  /** Registry entries for the demo tenants (PUT bodies), pointing at this run's vault. */
  registrations: {
    management: { tenantId: string; body: Record<string, unknown> }
    managed: { tenantId: string; body: Record<string, unknown> }[]
    /** What the demo Requester may ask for (POST /v1/grants bodies). */
    grants: Record<string, unknown>[]
  }
  /** Registers the demo tenants and grants through the broker's API, as its admin (idempotent). */
  register(app: InjectTarget): Promise<void>
  close(): Promise<void>
}

/** The broker's Fastify app, as far as registering needs it: requests injected in-process. */
export interface InjectTarget {
  inject(request: {
    method: 'GET' | 'PUT' | 'POST'
    url: string
    headers: Record<string, string>
    payload?: object
  }): PromiseLike<{ statusCode: number; json(): unknown }>
}

export async function startDemoAzure({
  stateFile,
  port = 0,
}: { stateFile?: string; port?: number } = {}): Promise<DemoAzure> {
  if (stateFile) await mkdir(path.dirname(stateFile), { recursive: true })
  const emulator = await startEmulator({
    seed: await readSeed(DEMO_SEED),
    port,
    ...(stateFile && { snapshotFile: stateFile }),
  })
  trustCa(emulator.ca)
  if (stateFile) {
    // `npm run token` finds the running emulator and the demo apps' credentials here (files mode 0600).
    await saveSnapshot(emulator.state, stateFile)
    const endpoint = { url: emulator.url, caFile: emulator.caFile }
    await writeFile(endpointFile(stateFile), JSON.stringify(endpoint), { mode: 0o600 })
  }
  const secretOf = (appId: string) => {
    const secret = emulator.state.applications.get(appId)?.passwords[0]?.secretText
    if (!secret) throw new Error(`the demo seed has no password for ${appId}`)
    return secret
  }
  const credentialOf = (appId: string) =>
    new ClientSecretCredential(DEMO_IDS.tenantA, appId, secretOf(appId), {
      authorityHost: emulator.url,
      disableInstanceDiscovery: true,
    })
  const callers = new Map(Object.entries(DEMO_CALLERS).map(([role, appId]) => [role, credentialOf(appId)]))
  const vaultUrl = emulator.vaults[DEMO_IDS.vault]
  if (!vaultUrl) throw new Error(`the demo seed has no vault ${DEMO_IDS.vault}`)
  const clientSecret = { vaultUrl, secretName: DEMO_IDS.deployerSecretName }
  const requester = { principalType: 'app', principalId: DEMO_CALLERS.Requester }
  const registrations: DemoAzure['registrations'] = {
    management: {
      tenantId: DEMO_IDS.tenantA,
      body: {
        displayName: 'Contoso Network Management (tenant A)',
        networkManagerId: DEMO_IDS.networkManagerId,
        poolIds: [pool('pool-retail'), pool('pool-logistics'), pool('pool-retail-v6')],
      },
    },
    managed: [
      {
        tenantId: DEMO_IDS.tenantB,
        body: {
          displayName: 'Contoso Retail (tenant B)',
          managementTenantId: DEMO_IDS.tenantA,
          appId: DEMO_IDS.deployerAppId,
          clientSecret,
          subscriptionIds: [DEMO_IDS.subscriptionB],
        },
      },
      {
        tenantId: DEMO_IDS.tenantC,
        body: {
          displayName: 'Contoso Logistics (tenant C)',
          managementTenantId: DEMO_IDS.tenantA,
          appId: DEMO_IDS.deployerAppId,
          clientSecret,
          subscriptionIds: [DEMO_IDS.subscriptionC],
        },
      },
    ],
    grants: [
      {
        ...requester,
        subscriptionIds: [DEMO_IDS.subscriptionB],
        poolIds: [pool('pool-retail')],
        maxAddresses: '65536',
        description: 'demo: the retail team may take up to a /16 from pool-retail in tenant B',
      },
      {
        ...requester,
        subscriptionIds: [DEMO_IDS.subscriptionB],
        poolIds: [pool('pool-retail-v6')],
        maxAddresses: String(2n ** 64n),
        description: 'demo: the retail team may take up to a /64 from pool-retail-v6 in tenant B',
      },
      {
        ...requester,
        subscriptionIds: [DEMO_IDS.subscriptionC],
        poolIds: [pool('pool-logistics')],
        maxAddresses: '65536',
        description: 'demo: up to a /16 from pool-logistics in tenant C',
      },
    ],
  }
  const token = async (role: DemoRole) => (await callers.get(role)!.getToken('api://ipam-broker/.default')).token
  return {
    emulator,
    url: emulator.url,
    caFile: emulator.caFile,
    keyVaultCredential: credentialOf(DEMO_IDS.brokerAppId),
    auth: { tenantId: DEMO_IDS.tenantA, audience: DEMO_IDS.brokerAppId },
    token,
    registrations,
    async register(app) {
      const { management, managed, grants } = registrations
      const headers = { authorization: `Bearer ${await token('Admin')}` }
      const expect = async (method: 'GET' | 'PUT' | 'POST', url: string, body?: object) => {
        const response = await app.inject({ method, url, headers, ...(body !== undefined && { payload: body }) })
        if (response.statusCode >= 300) {
          throw new Error(
            `registering the demo topology: ${method} ${url} answered ${response.statusCode} ${JSON.stringify(response.json())}`,
          )
        }
        return response.json()
      }
      await expect('PUT', `/v1/tenants/management/${management.tenantId}`, management.body)
      for (const tenant of managed) await expect('PUT', `/v1/tenants/managed/${tenant.tenantId}`, tenant.body)
      const held = (await expect('GET', `/v1/grants?principalId=${DEMO_CALLERS.Requester}`)) as {
        value: { poolIds: string[]; subscriptionIds: string[]; maxAddresses: string }[]
      }
      for (const grant of grants) {
        const same = held.value.some(
          (g) =>
            g.maxAddresses === grant['maxAddresses'] &&
            JSON.stringify(g.poolIds) === JSON.stringify(grant['poolIds']) &&
            JSON.stringify(g.subscriptionIds) === JSON.stringify(grant['subscriptionIds']),
        )
        if (!same) await expect('POST', '/v1/grants', grant)
      }
    },
    close: () => emulator.close(),
  }
}
