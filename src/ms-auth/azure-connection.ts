import { ClientSecretCredential, DefaultAzureCredential, type TokenCredential } from '@azure/identity'
import type { Logger } from 'pino'
import { type Config, ConfigError } from '../config.ts'
import { type AzureEndpoints, azureEndpoints, localEndpoints, trustCaFile } from './azure-cloud.ts'
import { CallerAuthenticator } from './caller-identity.ts'

/** The emulator's demo topology as the process uses it (emulator/demo-broker.ts). */
export interface DemoAzure {
  url: string
  caFile: string
  keyVaultCredential: TokenCredential
  auth: { tenantId: string; audience: string }
  token(role: 'Requester' | 'Reader' | 'Admin'): Promise<string>
  registrations: { management: { body: Record<string, unknown> } }
  /** Registers the demo tenants and grants through the broker's API (idempotent). */
  register(app: {
    inject(request: {
      method: 'GET' | 'PUT' | 'POST'
      url: string
      headers: Record<string, string>
      payload?: object
    }): PromiseLike<{ statusCode: number; json(): unknown }>
  }): Promise<void>
  close(): Promise<void>
}

export interface AzureConnection {
  endpoints: AzureEndpoints
  keyVaultCredential: TokenCredential
  authenticator: CallerAuthenticator
  /** Set when the emulator runs in-process (AZURE_CLOUD=emulator). */
  demo: DemoAzure | undefined
  close(): Promise<void>
}

// Only the emulator differs from production: its endpoints and CA. It is loaded by path, so the
// container image (built from src/ alone) never contains it and refuses AZURE_CLOUD=emulator plainly.
const EMULATOR_MODULE = new URL('../../emulator/demo-broker.ts', import.meta.url).href

export async function connectAzure(config: Config, log: Logger): Promise<AzureConnection> {
  if (config.AZURE_CA_FILE) await trustCaFile(config.AZURE_CA_FILE)
  if (config.AZURE_CLOUD === 'emulator' && !config.AZURE_AUTHORITY_HOST) {
    let module: { startDemoAzure(options: { stateFile?: string }): Promise<DemoAzure> }
    try {
      module = (await import(EMULATOR_MODULE)) as typeof module
    } catch (err) {
      throw new ConfigError(
        `AZURE_CLOUD=emulator, but the emulator is not part of this build (${(err as Error).message}); set AZURE_CLOUD to a real cloud.`,
      )
    }
    const demo = await module.startDemoAzure({ stateFile: config.EMULATOR_STATE_FILE })
    log.info({ url: demo.url, caFile: demo.caFile }, 'local Azure emulator started with the demo topology')
    return {
      endpoints: localEndpoints(demo.url),
      keyVaultCredential: demo.keyVaultCredential,
      authenticator: new CallerAuthenticator({
        authorityHost: demo.url,
        tenantId: demo.auth.tenantId,
        audiences: [demo.auth.audience],
      }),
      demo,
      close: () => demo.close(),
    }
  }

  const cloud = config.AZURE_CLOUD === 'emulator' ? 'AzurePublicCloud' : config.AZURE_CLOUD
  const endpoints = azureEndpoints(cloud, {
    authorityHost: config.AZURE_AUTHORITY_HOST,
    resourceManager: config.AZURE_RESOURCE_MANAGER_URL ?? config.AZURE_AUTHORITY_HOST,
  })
  if (!config.AUTH_TENANT_ID || !config.AUTH_AUDIENCE) {
    throw new ConfigError(
      'Invalid configuration: AUTH_TENANT_ID and AUTH_AUDIENCE are required unless AZURE_CLOUD=emulator (they say whose tokens callers present)',
    )
  }
  return {
    endpoints,
    keyVaultCredential: brokerIdentity(config, endpoints),
    authenticator: new CallerAuthenticator({
      authorityHost: endpoints.authorityHost,
      tenantId: config.AUTH_TENANT_ID,
      audiences: config.AUTH_AUDIENCE.split(',')
        .map((audience) => audience.trim())
        .filter(Boolean),
    }),
    demo: undefined,
    close: async () => undefined,
  }
}

function brokerIdentity(config: Config, endpoints: AzureEndpoints): TokenCredential {
  if (config.BROKER_IDENTITY === 'default') return new DefaultAzureCredential()
  // The one bootstrap secret, from the environment (a secret store in production), never from a file.
  const tenantId = process.env['AZURE_TENANT_ID']
  const clientId = process.env['AZURE_CLIENT_ID']
  const secret = process.env['AZURE_CLIENT_SECRET']
  if (!tenantId || !clientId || !secret) {
    throw new ConfigError(
      'Invalid configuration: BROKER_IDENTITY=client-secret needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET',
    )
  }
  return new ClientSecretCredential(tenantId, clientId, secret, {
    authorityHost: endpoints.authorityHost,
    disableInstanceDiscovery: !endpoints.publicEndpoints,
  })
}
