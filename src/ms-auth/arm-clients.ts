import { AsyncLocalStorage } from 'node:async_hooks'
import { AuthorizationManagementClient } from '@azure/arm-authorization'
import { NetworkManagementClient } from '@azure/arm-network'
import { auxiliaryAuthenticationHeaderPolicy, type PipelinePolicy } from '@azure/core-rest-pipeline'
import type { BrokerMetrics } from '../metrics/broker-metrics.ts'
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

/**
 * Counts every ARM response by status, and errors by ARM's code. Last in the pipeline, so each attempt
 * (retries, a 401 challenge answered, long-running-operation polls) is one count, and a failure to get
 * a token (thrown by an outer policy) is not taken for an ARM error.
 */
function armMetricsPolicy(metrics: BrokerMetrics): PipelinePolicy {
  return {
    name: 'ipamBrokerArmMetrics',
    async sendRequest(request, next) {
      const response = await next(request).catch((err: unknown) => {
        const { code, name } = err as { code?: unknown; name?: unknown }
        metrics.observeArmFailure(typeof code === 'string' ? code : typeof name === 'string' ? name : 'RequestError')
        throw err
      })
      metrics.observeArmResponse(request.method, response.status, armErrorCode(response.status, response.bodyAsText))
      return response
    },
  }
}

/** ARM's error.code, in an error response or in an operation status that ended Failed (sent as 200). */
function armErrorCode(status: number, body: string | null | undefined): string | undefined {
  // Only bodies that can carry an error are parsed: not every 2xx list or VNet.
  if (!body || (status < 400 && !body.includes('"Failed"'))) return undefined
  let parsed: { status?: unknown; error?: { code?: unknown } }
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch {
    return undefined
  }
  if (status < 400 && parsed.status !== 'Failed') return undefined
  return typeof parsed.error?.code === 'string' ? parsed.error.code : undefined
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
  /** Counts ARM responses and errors. */
  metrics?: BrokerMetrics
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
  readonly #metricsPolicy: PipelinePolicy | undefined

  constructor(options: ArmClientFactoryOptions) {
    this.#options = options
    this.#metricsPolicy = options.metrics && armMetricsPolicy(options.metrics)
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
      if (this.#metricsPolicy) policies.push({ policy: this.#metricsPolicy, position: 'perRetry' })
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
        additionalPolicies: [
          { policy: correlationPolicy, position: 'perRetry' },
          ...(this.#metricsPolicy ? [{ policy: this.#metricsPolicy, position: 'perRetry' as const }] : []),
        ],
      })
      this.#authorization.set(key, client)
    }
    return client
  }
}
