import { randomUUID } from 'node:crypto'
import swagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController } from 'fastify'
import type { Logger } from 'pino'
import type { PrismaClient } from './db/client.ts'
import drain from './plugins/drain.ts'
import problemDetails, { ProblemSchema } from './plugins/problem-details.ts'
import requestLog, { REQUEST_ID_HEADER } from './plugins/request-log.ts'
import healthRoutes from './routes/health/index.ts'
import { HealthService } from './services/health.ts'

export interface AppDependencies {
  logger: Logger
  prisma: PrismaClient
  /** Names of the migrations this build ships; /readyz waits until all are applied. */
  migrations: readonly string[]
}

// A caller's x-request-id is kept only if it is short and plain, so it cannot forge log content.
const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export const API_VERSION = '0.1.0'

/** Builds the whole service from its dependencies; src/server.ts and the tests build the same app. */
export async function buildApp({ logger, prisma, migrations }: AppDependencies) {
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers[REQUEST_ID_HEADER]
      return typeof given === 'string' && CALLER_REQUEST_ID.test(given) ? given : randomUUID()
    },
    bodyLimit: 64 * 1024,
    // Unknown properties are refused (additionalProperties: false), never silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ipam-broker',
        version: API_VERSION,
        description:
          'Cross-tenant VNet deployments on Azure Virtual Network Manager IPAM pools, with a durable allocation ledger.',
      },
    },
    // Schemas with an $id become named components (#/components/schemas/<$id>).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json['$id'] === 'string' ? json['$id'] : `def-${i}`,
    },
  })
  app.addSchema(ProblemSchema)
  await app.register(problemDetails)
  await app.register(requestLog)
  await app.register(drain)

  await app.register(healthRoutes, { health: new HealthService(prisma, migrations) })
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
