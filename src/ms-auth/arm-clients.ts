import { AsyncLocalStorage } from 'node:async_hooks'
import { AuthorizationManagementClient } from '@azure/arm-authorization'
import { NetworkManagementClient } from '@azure/arm-network'
import { auxiliaryAuthenticationHeaderPolicy, type PipelinePolicy } from '@azure/core-rest-pipeline'
import type { AzureEndpoints } from './azure-cloud.ts'
import type { AppIdentity, TokenBroker } from './token-broker.ts'

/** What ARM said about one request: the ids its support asks for. */
export interface ArmResponseIds {
  method: string
  url: string
  status: number
  requestId: string | undefined
  correlationId: string | undefined
}

interface ArmCallContext {
  correlationId: string
  onResponse: (ids: ArmResponseIds) => void
}

const callContext = new AsyncLocalStorage<ArmCallContext>()

/**
 * Runs `work` with every ARM request it makes (long-running-operation polls included) sent under one
 * `x-ms-correlation-request-id`, and each response's ids reported to `onResponse`.
 */
export function withArmCorrelation<T>(
  correlationId: string,
  onResponse: (ids: ArmResponseIds) => void,
  work: () => Promise<T>,
): Promise<T> {
  return callContext.run({ correlationId, onResponse }, work)
}

const correlationPolicy: PipelinePolicy = {
  name: 'ipamBrokerCorrelation',
  async sendRequest(request, next) {
    const context = callContext.getStore()
    if (context) request.headers.set('x-ms-correlation-request-id', context.correlationId)
    const response = await next(request)
    context?.onResponse({
      method: request.method,
      url: request.url,
      status: response.status,
      requestId: response.headers.get('x-ms-request-id'),
      correlationId: response.headers.get('x-ms-correlation-request-id'),
    })
    return response
  },
}

/** Who a call acts as: an app in the subscription's tenant, plus the tenants of any linked resources. */
export interface ArmIdentity {
  app: AppIdentity
  tenantId: string
  /** Tenants whose resources the request links to (the management tenant's IPAM pool): auxiliary tokens. */
  auxiliaryTenantIds?: readonly string[]
}

export interface ArmClientFactoryOptions {
  tokens: TokenBroker
  endpoints: AzureEndpoints
  /** The SDK's retry policy settings (Retry-After is always honoured on 429 and 503). */
  retry?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number }
}

/**
 * NetworkManagementClients, one per subscription and identity, built the same way everywhere: the
 * primary token for the subscription's tenant, and the auxiliary tokens for linked tenants carried by
 * the SDK pipeline (`x-ms-authorization-auxiliary`), never by hand.
 */
export class ArmClientFactory {
  readonly #options: ArmClientFactoryOptions
  readonly #clients = new Map<string, NetworkManagementClient>()
  readonly #authorization = new Map<string, AuthorizationManagementClient>()

  constructor(options: ArmClientFactoryOptions) {
    this.#options = options
  }

  network(subscriptionId: string, identity: ArmIdentity): NetworkManagementClient {
    const auxiliary = [...new Set((identity.auxiliaryTenantIds ?? []).map((t) => t.toLowerCase()))]
      .filter((t) => t !== identity.tenantId.toLowerCase())
      .sort()
    const key = [
      subscriptionId.toLowerCase(),
      identity.tenantId.toLowerCase(),
      identity.app.appId,
      identity.app.secret.vaultUrl,
      identity.app.secret.secretName,
      ...auxiliary,
    ].join('|')
    let client = this.#clients.get(key)
    if (!client) {
      const { tokens, endpoints, retry } = this.#options
      const scopes = [endpoints.armScope]
      const policies: { policy: PipelinePolicy; position: 'perCall' | 'perRetry' }[] = [
        { policy: correlationPolicy, position: 'perRetry' },
      ]
      if (auxiliary.length) {
        policies.push({
          policy: auxiliaryAuthenticationHeaderPolicy({
            credentials: auxiliary.map((tenantId) => tokens.credential(tenantId, identity.app)),
            scopes,
          }),
          position: 'perRetry',
        })
      }
      client = new NetworkManagementClient(tokens.credential(identity.tenantId, identity.app), subscriptionId, {
        endpoint: endpoints.resourceManager,
        credentials: { scopes },
        additionalPolicies: policies,
        ...(retry && { retryOptions: retry }),
      })
      this.#clients.set(key, client)
    }
    return client
  }

  /** ARM's authorization API in one tenant, to ask what an identity may do (preflight). */
  authorization(subscriptionId: string, tenantId: string, app: AppIdentity): AuthorizationManagementClient {
    const key = [subscriptionId, tenantId, app.appId, app.secret.vaultUrl, app.secret.secretName]
      .join('|')
      .toLowerCase()
    let client = this.#authorization.get(key)
    if (!client) {
      const { tokens, endpoints } = this.#options
      client = new AuthorizationManagementClient(tokens.credential(tenantId, app), subscriptionId, {
        endpoint: endpoints.resourceManager,
        credentialScopes: [endpoints.armScope],
        additionalPolicies: [{ policy: correlationPolicy, position: 'perRetry' }],
      })
      this.#authorization.set(key, client)
    }
    return client
  }
}
