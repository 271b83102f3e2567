import { randomUUID } from 'node:crypto'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, LogController, type RawServerDefault } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { TokenCredential } from '@azure/identity'
import type { PrismaClient } from './db/client.ts'
import type { JobQueue } from './db/job-queue.ts'
import type { RowStreamer } from './db/row-stream.ts'
import { BrokerMetrics, type PoolAddresses } from './metrics/broker-metrics.ts'
import { ArmClientFactory } from './ms-auth/arm-clients.ts'
import type { AzureEndpoints } from './ms-auth/azure-cloud.ts'
import type { CallerAuthenticator } from './ms-auth/caller-identity.ts'
import { CredentialStore } from './ms-auth/credential-store.ts'
import { TokenBroker } from './ms-auth/token-broker.ts'
import authentication from './plugins/authentication.ts'
import drain from './plugins/drain.ts'
import metrics from './plugins/metrics.ts'
import problemDetails, {
  clientError,
  expectationFailed,
  frameworkError,
  ProblemSchema,
  refuseConnect,
} from './plugins/problem-details.ts'
import { ProblemError } from './services/errors.ts'
import requestLog, { REQUEST_ID_HEADER } from './plugins/request-log.ts'
import security from './plugins/security.ts'
import healthRoutes from './routes/health/index.ts'
import allocationRoutes, { ALLOCATION_SCHEMAS } from './routes/v1/allocations/index.ts'
import auditRoutes, { AUDIT_SCHEMAS } from './routes/v1/audit/index.ts'
import grantRoutes, { GRANT_SCHEMAS } from './routes/v1/grants/index.ts'
import operationRoutes, { OPERATION_SCHEMAS } from './routes/v1/operations/index.ts'
import poolRoutes, { POOL_SCHEMAS } from './routes/v1/pools/index.ts'
import prefixRoutes, { PREFIX_SCHEMAS } from './routes/v1/prefixes/index.ts'
import tenantRoutes, { TENANT_SCHEMAS } from './routes/v1/tenants/index.ts'
import vnetRoutes, { VNET_SCHEMAS } from './routes/v1/vnets/index.ts'
import { AuditService } from './services/audit.ts'
import { GrantService } from './services/grants.ts'
import { HealthService } from './services/health.ts'
import { HistoryService } from './services/history.ts'
import { LedgerService } from './services/ledger.ts'
import { OperationRunner } from './services/operation-runner.ts'
import { OperationService } from './services/operations.ts'
import { PoolInsightService } from './services/pool-insight.ts'
import { PreflightService } from './services/preflight.ts'
import { TenantRegistryService } from './services/tenant-registry.ts'
import { VnetService } from './services/vnets.ts'

export interface AppDependencies {
  logger: Logger
  prisma: PrismaClient
  /** Names of the migrations this build ships; /readyz waits until all are applied. */
  migrations: readonly string[]
  /** Azure and the job queue; without them only the health routes exist (tests of the foundation). */
  azure?: AzureDependencies
  /** Cursor-backed row streams for exports; needed with `azure`. */
  streams?: RowStreamer
  http?: Partial<HttpLimits>
}

export interface HttpLimits {
  bodyLimitBytes: number
  maxHeaderBytes: number
  rateLimitPerMinute: number
  corsOrigins: readonly string[]
}

const DEFAULT_LIMITS: HttpLimits = {
  bodyLimitBytes: 64 * 1024,
  maxHeaderBytes: 16 * 1024,
  rateLimitPerMinute: 600,
  corsOrigins: [],
}

export interface AzureDependencies {
  endpoints: AzureEndpoints
  /** The broker's own identity to Key Vault. */
  keyVaultCredential: TokenCredential
  authenticator: CallerAuthenticator
  queue: Pick<JobQueue, 'enqueue' | 'work'>
  secretCacheSeconds: number
  waitMaxSeconds: number
  /** Workers in this process; 0 serves the API only. */
  workerConcurrency: number
  subscriptionConcurrency: number
  /** The Azure SDK's retry settings for ARM calls (tests shorten the delays). */
  armRetry?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number }
}

// A caller's x-request-id is kept only if it is short and plain, so it cannot forge log content.
const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export const API_VERSION = '0.1.0'

/** Builds the whole service from its dependencies; src/server.ts and the tests build the same app. */
export async function buildApp({ logger, prisma, migrations, azure, streams, http }: AppDependencies) {
  const limits = { ...DEFAULT_LIMITS, ...http }
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers[REQUEST_ID_HEADER]
      return typeof given === 'string' && CALLER_REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Rejections before routing, and requests the HTTP parser refuses, answer in problem details too.
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    bodyLimit: limits.bodyLimitBytes,
    // Path parameters may be URL-encoded ARM ids (GET /v1/pools/{pool}/usage), ~200 characters.
    routerOptions: { maxParamLength: 512 },
    http: { maxHeaderSize: limits.maxHeaderBytes, requireHostHeader: false },
    // Unknown properties are refused (additionalProperties: false), never silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.server.on('checkExpectation', expectationFailed)
  app.server.on('connect', refuseConnect)
  // HTTP/1.1 without Host: Node would answer a bare 400 itself; this one is problem details.
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && !request.headers.host) {
      throw new ProblemError(
        400,
        'host-required',
        'Host header required',
        'HTTP/1.1 requests must carry a Host header.',
      )
    }
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ipam-broker',
        version: API_VERSION,
        description:
          'Cross-tenant VNet deployments on Azure Virtual Network Manager IPAM pools, with a durable allocation ledger.',
      },
      servers: [{ url: '/', description: 'This broker' }],
      components: {
        securitySchemes: {
          entra: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              "An Entra ID access token for the broker's API, carrying an app role: Requester, Reader or Admin",
          },
        },
      },
    },
    // Schemas with an $id become named components (#/components/schemas/<$id>).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json['$id'] === 'string' ? json['$id'] : `def-${i}`,
    },
  })
  // Swagger UI for people; the document itself at /docs/json.
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
  app.addSchema(ProblemSchema)
  await app.register(problemDetails)
  await app.register(requestLog)
  await app.register(drain)
  await app.register(security, { rateLimitPerMinute: limits.rateLimitPerMinute, corsOrigins: limits.corsOrigins })
  const brokerMetrics = new BrokerMetrics({
    ledgerPoolUsage: () => ledgerPoolUsage(prisma),
    log: logger.child({ module: 'metrics' }),
  })
  await app.register(metrics, { metrics: brokerMetrics })

  await app.register(healthRoutes, { health: new HealthService(prisma, migrations) })
  if (azure) {
    if (!streams) throw new Error('buildApp: a broker (azure) needs row streams for its exports')
    await registerBroker(app, prisma, logger, azure, streams)
  }
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>

/** ms-auth → services → routes, and the workers that run operations from the job queue. */
async function registerBroker(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>,
  prisma: PrismaClient,
  logger: Logger,
  azure: AzureDependencies,
  streams: RowStreamer,
) {
  const store = new CredentialStore({
    credential: azure.keyVaultCredential,
    ttlMs: azure.secretCacheSeconds * 1000,
    log: logger,
    verifyChallengeResource: azure.endpoints.publicEndpoints,
    metrics: app.metrics,
  })
  const tokens = new TokenBroker({ store, endpoints: azure.endpoints, log: logger, metrics: app.metrics })
  const arm = new ArmClientFactory({
    tokens,
    endpoints: azure.endpoints,
    ...(azure.armRetry && { retry: azure.armRetry }),
    metrics: app.metrics,
  })

  const audit = new AuditService(prisma, logger)
  const grants = new GrantService(prisma, audit)
  const registry = new TenantRegistryService(prisma, audit)
  const ledger = new LedgerService()
  const operations = new OperationService(prisma)
  const vnets = new VnetService({ prisma, registry, ledger, queue: azure.queue, arm, grants, audit })
  const preflight = new PreflightService({ registry, store, tokens, arm, endpoints: azure.endpoints, log: logger })
  const history = new HistoryService({
    prisma,
    streams,
    registeredPoolIds: async () => (await registry.listManagementTenants()).flatMap((t) => t.poolIds),
  })
  const runner = new OperationRunner({ prisma, registry, ledger, arm, audit, log: logger, metrics: app.metrics })

  for (const schema of [
    ...OPERATION_SCHEMAS,
    ...TENANT_SCHEMAS,
    ...VNET_SCHEMAS,
    ...GRANT_SCHEMAS,
    ...AUDIT_SCHEMAS,
    ...ALLOCATION_SCHEMAS,
    ...PREFIX_SCHEMAS,
    ...POOL_SCHEMAS,
  ]) {
    app.addSchema(schema)
  }
  await app.register(authentication, { authenticator: azure.authenticator })
  await app.register(tenantRoutes, { registry, preflight })
  await app.register(grantRoutes, { grants })
  await app.register(auditRoutes, { audit })
  await app.register(vnetRoutes, { vnets, operations, waitMaxSeconds: azure.waitMaxSeconds })
  await app.register(operationRoutes, { operations, waitMaxSeconds: azure.waitMaxSeconds })
  await app.register(allocationRoutes, { history })
  await app.register(prefixRoutes, { history })
  await app.register(poolRoutes, { pools: new PoolInsightService({ prisma, registry, arm, metrics: app.metrics }) })

  if (azure.workerConcurrency > 0) {
    app.addHook('onReady', async () => {
      await azure.queue.work(
        { concurrency: azure.workerConcurrency, groupConcurrency: azure.subscriptionConcurrency },
        (job, attempt) => runner.run(job.data.operationId, attempt),
      )
    })
  }
}

/** Addresses the ledger holds per pool, for the metrics; every pool it has known, at 0 once released. */
async function ledgerPoolUsage(prisma: PrismaClient): Promise<PoolAddresses[]> {
  // requested_size is numeric(40,0): float8 is exact to 2^53, close enough for a gauge beyond.
  return prisma.$queryRaw<PoolAddresses[]>`
    SELECT pool_id AS "poolId",
           COALESCE(SUM(requested_size) FILTER (WHERE state IN ('deploying', 'active', 'releasing')), 0)::float8 AS addresses
    FROM allocation
    GROUP BY pool_id`
}
