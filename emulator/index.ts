import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { Faults } from './admin/faults.ts'
import { adminRoutes } from './admin/routes.ts'
import { networkRoutes } from './arm/network.ts'
import { armFrontDoor, armRoutes } from './arm/routes.ts'
import { createServiceApp, RequestLog, serviceOf } from './common/pipeline.ts'
import { recordSecret } from './common/secret-record.ts'
import { ensureTls, generateClientCertificate, type TlsMaterial } from './common/tls.ts'
import { entraRoutes } from './entra/routes.ts'
import { TokenIssuer } from './entra/tokens.ts'
import { graphRoutes } from './graph/routes.ts'
import { keyVaultRoutes } from './keyvault/routes.ts'
import { applySeed, type Seed } from './seed.ts'
import { loadSnapshot, saveSnapshot } from './snapshot.ts'
import type { EmulatorState } from './state.ts'

// "Azurite for AVNM IPAM": Entra ID, Key Vault and ARM (RBAC today, Microsoft.Network next), over
// HTTPS with a local CA so that the real Azure SDK clients talk to it unchanged.

export const EMULATOR_ROOT = path.dirname(fileURLToPath(import.meta.url))
export const DEFAULT_TLS_DIR = path.resolve(EMULATOR_ROOT, '../.data/emulator-tls')
export const DEMO_SEED = path.join(EMULATOR_ROOT, 'seeds/demo.json')

export interface EmulatorOptions {
  seed: Seed
  /**
   * Keeps the emulated world across restarts: read at start when it exists (instead of the seed),
   * written on close. It holds the emulated apps' generated secrets (written mode 0600).
   */
  snapshotFile?: string
  /** Port of the login (Entra) endpoint; 0 or unset picks a free one. Each vault gets a free port. */
  port?: number
  tlsDir?: string
}

export interface Emulator {
  /** Base URL of the login and ARM endpoints (authorityHost for @azure/identity, endpoint for ARM clients). */
  url: string
  caFile: string
  ca: string
  /** Vault URL by vault name. */
  vaults: Record<string, string>
  state: EmulatorState
  requestLog: RequestLog
  /** Fault injection rules (also reachable over HTTP at /_emulator/faults). */
  faults: Faults
  close(): Promise<void>
}

function listeningUrl(app: FastifyInstance): string {
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('emulator is not listening')
  return `https://localhost:${address.port}`
}

export async function startEmulator({
  seed,
  port = 0,
  tlsDir = DEFAULT_TLS_DIR,
  snapshotFile,
}: EmulatorOptions): Promise<Emulator> {
  const tls: TlsMaterial = await ensureTls(tlsDir)
  const restored = snapshotFile ? await loadSnapshot(snapshotFile) : undefined
  const state = restored ?? applySeed(seed)
  // A restored world's secrets were made by an earlier process, perhaps before this test run.
  for (const app of restored?.applications.values() ?? []) {
    for (const password of app.passwords) recordSecret('app-password', password.secretText)
  }
  for (const vault of restored?.vaults.values() ?? []) {
    for (const version of [...vault.secrets.values()].flat()) recordSecret('vault-secret', version.value)
  }
  // Certificates take WebCrypto, so the seed's are made here rather than in the synchronous applySeed.
  for (const app of restored ? [] : (seed.applications ?? [])) {
    for (let i = 0; i < (app.certificates ?? 0); i++) {
      state.applications.get(app.appId)?.certificates.push(await generateClientCertificate(app.displayName))
    }
  }
  const issuer = await TokenIssuer.create(state)
  const requestLog = new RequestLog()
  const faults = new Faults()
  const apps: FastifyInstance[] = []

  // Entra ID and ARM share the main host, as one `az cloud register` endpoint can name both.
  const login = createServiceApp(serviceOf, tls, requestLog, faults)
  // An lro-fail fault (marked by the pipeline) fails the operation this response starts. Added before
  // the routes are registered, as Fastify copies a parent's hooks into a plugin when registering it.
  login.addHook('onSend', async (request, reply, payload) => {
    const failure = faults.lroFailureFor(request.raw)
    const header = reply.getHeader('azure-asyncoperation')
    if (failure && typeof header === 'string') {
      const id = new URL(header).pathname.split('/').at(-1) ?? ''
      const operation = state.network.operations.get(id)
      if (operation) operation.error = { code: failure.code, message: failure.message }
    }
    return payload
  })
  let loginUrl = ''
  await login.register(entraRoutes, { state, issuer, baseUrl: () => loginUrl })
  await login.register(graphRoutes, { state, issuer })
  await login.register(async (arm) => {
    arm.addHook('preHandler', armFrontDoor({ state, issuer }))
    await arm.register(armRoutes, { state, issuer })
    await arm.register(networkRoutes, { state })
  })
  await login.register(adminRoutes, { state, requestLog, faults })
  apps.push(login)
  await login.listen({ host: 'localhost', port })
  loginUrl = listeningUrl(login)

  const vaults: Record<string, string> = {}
  for (const vault of state.vaults.values()) {
    const app = createServiceApp('keyvault', tls, requestLog, faults)
    let vaultUrl = ''
    await app.register(keyVaultRoutes, { state, issuer, vault, vaultUrl: () => vaultUrl, loginUrl: () => loginUrl })
    apps.push(app)
    await app.listen({ host: 'localhost', port: 0 })
    vaultUrl = listeningUrl(app)
    vaults[vault.name] = vaultUrl
  }

  return {
    url: loginUrl,
    caFile: tls.caFile,
    ca: tls.ca,
    vaults,
    state,
    requestLog,
    faults,
    close: async () => {
      await Promise.all(apps.map((app) => app.close()))
      if (snapshotFile) await saveSnapshot(state, snapshotFile)
    },
  }
}
