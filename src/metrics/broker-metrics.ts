import type { Logger } from 'pino'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

export type OperationKind = 'deploy' | 'associate' | 'release' | 'delete'
export type OperationOutcome = 'succeeded' | 'failed'
/** issued: Entra answered 2xx; refused: 4xx (bad secret, unknown app...); error: 5xx or no answer at all. */
export type TokenOutcome = 'issued' | 'refused' | 'error'
export type KeyVaultOutcome = 'succeeded' | 'failed'

/** Addresses the ledger holds in one pool. */
export interface PoolAddresses {
  poolId: string
  addresses: number
}

/** What ARM's getPoolUsage reports for a pool: decimal strings, as IPv6 sizes exceed 64 bits. */
export interface ArmPoolUsage {
  total: string
  allocated: string
  available?: string
}

export interface BrokerMetricsOptions {
  /** Addresses held per pool, read from the ledger on every scrape. */
  ledgerPoolUsage?: () => Promise<PoolAddresses[]>
  /** Where a failed ledger read during a scrape is reported. */
  log?: Logger
}

export const METRICS_PREFIX = 'ipam_broker_'
const POOL_USAGE_KINDS = ['total', 'allocated', 'available'] as const

// Requests may wait for an operation (?wait=, at most a minute), hence the long tail.
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
// ARM long-running operations: seconds for a VNet PUT, many minutes when ARM is throttling or retrying.
const OPERATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800]
// An ARM error code as a label: a bounded vocabulary of identifiers, never free text from a body.
const ERROR_CODE = /^[A-Za-z][A-Za-z0-9_.]{0,79}$/

/**
 * The broker's Prometheus metrics, in a registry of its own: several apps in one process (tests)
 * must not share, or collide in, prom-client's global registry.
 */
export class BrokerMetrics {
  readonly registry = new Registry()
  readonly #httpRequests: Counter<'method' | 'route' | 'status_code'>
  readonly #httpDuration: Histogram<'method' | 'route' | 'status_code'>
  readonly #operations: Counter<'kind' | 'outcome'>
  readonly #operationDuration: Histogram<'kind' | 'outcome'>
  readonly #armRequests: Counter<'method' | 'status_code'>
  readonly #armErrors: Counter<'code'>
  readonly #tokenRequests: Counter<'tenant_id' | 'outcome'>
  readonly #keyVaultReads: Counter<'outcome'>
  readonly #poolArmAddresses: Gauge<'pool_id' | 'kind'>

  constructor({ ledgerPoolUsage, log }: BrokerMetricsOptions = {}) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: METRICS_PREFIX })
    this.#httpRequests = new Counter({
      name: `${METRICS_PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by method, route template ("unmatched" when no route matched) and status code; scrapes of /metrics are not counted.',
      labelNames: ['method', 'route', 'status_code'],
      registers,
    })
    this.#httpDuration = new Histogram({
      name: `${METRICS_PREFIX}http_request_duration_seconds`,
      help: 'Time from receiving an HTTP request to sending its response, by method, route template and status code; scrapes of /metrics are not observed.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers,
    })
    this.#operations = new Counter({
      name: `${METRICS_PREFIX}operations_total`,
      help: 'Operations that reached a final state in this process, by kind (deploy, associate, release, delete) and outcome (succeeded, failed); attempts that will be retried are not counted.',
      labelNames: ['kind', 'outcome'],
      registers,
    })
    this.#operationDuration = new Histogram({
      name: `${METRICS_PREFIX}operation_duration_seconds`,
      help: "Time from an operation's acceptance by the API (its createdAt, so time queued and retries included) to its final state, by kind and outcome.",
      labelNames: ['kind', 'outcome'],
      buckets: OPERATION_BUCKETS,
      registers,
    })
    this.#armRequests = new Counter({
      name: `${METRICS_PREFIX}arm_requests_total`,
      help: "HTTP responses from Azure Resource Manager to the broker's clients, by method and status code; every attempt counts (SDK retries, long-running-operation polls). Requests that got no response are counted only in arm_errors_total.",
      labelNames: ['method', 'status_code'],
      registers,
    })
    this.#armErrors = new Counter({
      name: `${METRICS_PREFIX}arm_errors_total`,
      help: "ARM errors by code: the error.code of a 4xx/5xx response body (HTTP_<status> when it has none), of a long-running operation's status that reports Failed, or the client's error code when no response came (REQUEST_SEND_ERROR...).",
      labelNames: ['code'],
      registers,
    })
    this.#tokenRequests = new Counter({
      name: `${METRICS_PREFIX}token_requests_total`,
      help: "Token requests sent to Entra ID's token endpoint for the apps the broker acts as (tokens MSAL served from its cache are not counted; nor are the broker's own Key Vault tokens), by tenant and outcome: issued (2xx), refused (4xx), error (5xx or no answer).",
      labelNames: ['tenant_id', 'outcome'],
      registers,
    })
    this.#keyVaultReads = new Counter({
      name: `${METRICS_PREFIX}keyvault_reads_total`,
      help: 'Client secret reads sent to Key Vault (secrets served from the in-memory cache are not counted), by outcome: succeeded, or failed after the SDK retries.',
      labelNames: ['outcome'],
      registers,
    })
    this.#poolArmAddresses = new Gauge({
      name: `${METRICS_PREFIX}pool_arm_addresses`,
      help: "IPAM pool addresses as ARM's getPoolUsage last reported them to this process, by pool id and kind (total, allocated, available); beyond 2^53 (IPv6) the value is approximate.",
      labelNames: ['pool_id', 'kind'],
      registers,
    })
    if (ledgerPoolUsage) {
      new Gauge({
        name: `${METRICS_PREFIX}pool_allocated_addresses`,
        help: "Addresses the broker's ledger holds per IPAM pool (allocations deploying, active or releasing), read from the database at each scrape; 0 once a pool's allocations are all released or failed.",
        labelNames: ['pool_id'],
        registers,
        async collect() {
          // The series go away rather than report stale figures, and the rest of the scrape still answers.
          this.reset()
          try {
            for (const { poolId, addresses } of await ledgerPoolUsage()) this.set({ pool_id: poolId }, addresses)
          } catch (err) {
            log?.warn({ err }, 'metrics: the ledger could not be read for the pool gauges')
          }
        },
      })
    }
  }

  get contentType(): string {
    return this.registry.contentType
  }

  metrics(): Promise<string> {
    return this.registry.metrics()
  }

  observeHttpRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) }
    this.#httpRequests.inc(labels)
    this.#httpDuration.observe(labels, seconds)
  }

  observeOperation(kind: OperationKind, outcome: OperationOutcome, seconds: number): void {
    this.#operations.inc({ kind, outcome })
    this.#operationDuration.observe({ kind, outcome }, Math.max(0, seconds))
  }

  /** One ARM response; `errorCode` for an error status or a failed long-running operation. */
  observeArmResponse(method: string, status: number, errorCode?: string): void {
    this.#armRequests.inc({ method, status_code: String(status) })
    if (errorCode !== undefined || status >= 400) {
      this.#armErrors.inc({
        code: errorCode !== undefined && ERROR_CODE.test(errorCode) ? errorCode : `HTTP_${status}`,
      })
    }
  }

  /** An ARM request that got no response (connection refused, reset, timed out, aborted). */
  observeArmFailure(code: string): void {
    this.#armErrors.inc({ code: ERROR_CODE.test(code) ? code : 'RequestError' })
  }

  observeTokenRequest(tenantId: string, outcome: TokenOutcome): void {
    this.#tokenRequests.inc({ tenant_id: tenantId.toLowerCase(), outcome })
  }

  observeKeyVaultRead(outcome: KeyVaultOutcome): void {
    this.#keyVaultReads.inc({ outcome })
  }

  /** What ARM reports for a pool; decimal strings become floats, exact up to 2^53. */
  observePoolUsage(poolId: string, usage: ArmPoolUsage): void {
    for (const kind of POOL_USAGE_KINDS) {
      const value = usage[kind]?.trim()
      const addresses = value ? Number(value) : NaN
      if (Number.isFinite(addresses)) this.#poolArmAddresses.set({ pool_id: poolId, kind }, addresses)
      else this.#poolArmAddresses.remove({ pool_id: poolId, kind })
    }
  }
}
