import { type AccessToken, ClientSecretCredential, type GetTokenOptions, type TokenCredential } from '@azure/identity'
import type { PipelinePolicy } from '@azure/core-rest-pipeline'
import type { Logger } from 'pino'
import type { BrokerMetrics } from '../metrics/broker-metrics.ts'
import type { AzureEndpoints } from './azure-cloud.ts'
import type { CredentialStore, SecretReference } from './credential-store.ts'

/** An app registration the broker acts as, and where its client secret is kept. */
export interface AppIdentity {
  appId: string
  secret: SecretReference
}

// AADSTS7000215: invalid client secret (rotated); AADSTS7000222: the secret has expired.
const STALE_SECRET_CODES = [7000215, 7000222]

function staleSecret(err: unknown): boolean {
  const codes = (err as { errorResponse?: { errorCodes?: number[] } }).errorResponse?.errorCodes ?? []
  const message = err instanceof Error ? err.message : ''
  return STALE_SECRET_CODES.some((code) => codes.includes(code) || message.includes(`AADSTS${code}`))
}

/**
 * One credential per (tenant, app), reused for the life of the process so that MSAL's cache serves
 * tokens until they are near expiry. The secret comes from the credential store; when Entra says it
 * is no longer valid, the store re-reads Key Vault once and the token request is repeated.
 */
export class TokenBroker {
  readonly #store: CredentialStore
  readonly #endpoints: AzureEndpoints
  readonly #log: Logger
  readonly #metrics: BrokerMetrics | undefined
  readonly #credentials = new Map<string, TokenCredential>()

  constructor({
    store,
    endpoints,
    log,
    metrics,
  }: {
    store: CredentialStore
    endpoints: AzureEndpoints
    log: Logger
    /** Counts the token requests that reach Entra ID. */
    metrics?: BrokerMetrics
  }) {
    this.#store = store
    this.#endpoints = endpoints
    this.#log = log.child({ module: 'token-broker' })
    this.#metrics = metrics
  }

  credential(tenantId: string, app: AppIdentity): TokenCredential {
    const key = `${tenantId.toLowerCase()}|${app.appId.toLowerCase()}|${app.secret.vaultUrl}|${app.secret.secretName}`
    let credential = this.#credentials.get(key)
    if (!credential) {
      credential = new KeyVaultSecretCredential(tenantId, app, this.#store, this.#endpoints, this.#log, this.#metrics)
      this.#credentials.set(key, credential)
    }
    return credential
  }
}

class KeyVaultSecretCredential implements TokenCredential {
  readonly #tenantId: string
  readonly #app: AppIdentity
  readonly #store: CredentialStore
  readonly #endpoints: AzureEndpoints
  readonly #log: Logger
  readonly #tokenRequests: PipelinePolicy | undefined
  // Rebuilt only when the secret's value changes, so a re-read of the same secret keeps the token cache.
  #current: { secret: string; credential: ClientSecretCredential } | undefined

  constructor(
    tenantId: string,
    app: AppIdentity,
    store: CredentialStore,
    endpoints: AzureEndpoints,
    log: Logger,
    metrics: BrokerMetrics | undefined,
  ) {
    this.#tenantId = tenantId
    this.#app = app
    this.#store = store
    this.#endpoints = endpoints
    this.#log = log
    this.#tokenRequests = metrics && tokenRequestPolicy(tenantId, metrics)
  }

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    try {
      return await (await this.#credential()).getToken(scopes, options)
    } catch (err) {
      if (!staleSecret(err)) throw err
      this.#log.warn(
        { tenantId: this.#tenantId, appId: this.#app.appId },
        'Entra refused the client secret; reading it again from Key Vault',
      )
      this.#store.invalidate(this.#app.secret, 'refused by Entra ID')
      return (await this.#credential()).getToken(scopes, options)
    }
  }

  async #credential(): Promise<ClientSecretCredential> {
    const secret = await this.#store.secret(this.#app.secret)
    if (this.#current?.secret !== secret) {
      this.#current = {
        secret,
        credential: new ClientSecretCredential(this.#tenantId, this.#app.appId, secret, {
          authorityHost: this.#endpoints.authorityHost,
          disableInstanceDiscovery: !this.#endpoints.publicEndpoints,
          ...(this.#tokenRequests && {
            additionalPolicies: [{ policy: this.#tokenRequests, position: 'perRetry' as const }],
          }),
        }),
      }
    }
    return this.#current.credential
  }
}

// MSAL's own endpoint discovery reads (GET) are not token requests.
const TOKEN_ENDPOINT = /\/oauth2\/(v2\.0\/)?token$/

/**
 * In the credential's HTTP pipeline, below MSAL's token cache: it sees only the requests that reach
 * Entra ID (each retry included), never a token served from the cache.
 */
function tokenRequestPolicy(tenantId: string, metrics: BrokerMetrics): PipelinePolicy {
  return {
    name: 'ipamBrokerTokenRequests',
    async sendRequest(request, next) {
      if (request.method !== 'POST' || !TOKEN_ENDPOINT.test(new URL(request.url).pathname)) return next(request)
      try {
        const response = await next(request)
        const { status } = response
        metrics.observeTokenRequest(tenantId, status < 400 ? 'issued' : status < 500 ? 'refused' : 'error')
        return response
      } catch (err) {
        metrics.observeTokenRequest(tenantId, 'error')
        throw err
      }
    },
  }
}
