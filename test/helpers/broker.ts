import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import supertest from 'supertest'
import { type DemoAzure, type DemoRole, startDemoAzure } from '../../emulator/demo-broker.ts'
import { type AppDependencies, buildApp, type App } from '../../src/app.ts'
import { createPrismaClient, type PrismaClient } from '../../src/db/client.ts'
import { JobQueue } from '../../src/db/job-queue.ts'
import { RowStreamer } from '../../src/db/row-stream.ts'
import { migrationNames } from '../../src/db/migrate.ts'
import { localEndpoints } from '../../src/ms-auth/azure-cloud.ts'
import { CallerAuthenticator } from '../../src/ms-auth/caller-identity.ts'
import { loggerOptions } from '../../src/logger.ts'
import { testDatabaseUrl } from './database.ts'
import { capturedLog } from './run-logs.ts'

export interface TestBroker {
  app: App
  prisma: PrismaClient
  azure: DemoAzure
  logs: Record<string, unknown>[]
  /** supertest against the app, with a bearer token of the demo app holding `role`. */
  as(role: DemoRole): Promise<{ token: string; request: supertest.Agent }>
  close(): Promise<void>
}

export interface TestBrokerOptions {
  /** An emulator shared with other brokers (several processes on one database); started here otherwise. */
  azure?: DemoAzure
  workerConcurrency?: number
  subscriptionConcurrency?: number
  retryLimit?: number
  secretCacheSeconds?: number
  /** The job queue's schema; a fresh one per broker by default, so runs of other test files cannot interfere. */
  queueSchema?: string
  /** Another database than the run's (e.g. a scratch one holding only a test's fixture). */
  databaseUrl?: string
  /** HTTP limits; the rate limit is lifted by default, as tests send far more than a caller would. */
  http?: AppDependencies['http']
}

/** The whole broker on the run's database and an in-process emulator, as `npm start` wires it. */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const azure = options.azure ?? (await startDemoAzure())
  const { logs, stream } = capturedLog('broker')
  const logger = pino(loggerOptions('info'), stream)
  const databaseUrl = options.databaseUrl ?? testDatabaseUrl()
  const prisma = createPrismaClient({ connectionString: databaseUrl, poolMax: 8 })
  const queue = await JobQueue.start({
    connectionString: databaseUrl,
    schema: options.queueSchema ?? `pgboss_test_${randomBytes(4).toString('hex')}`,
    log: logger,
    retryLimit: options.retryLimit ?? 4,
  })
  const streams = new RowStreamer({ connectionString: databaseUrl, maxStreams: 4 })
  const endpoints = localEndpoints(azure.url)
  const app = await buildApp({
    logger,
    prisma,
    migrations: await migrationNames(),
    streams,
    http: { rateLimitPerMinute: 1_000_000, ...options.http },
    azure: {
      endpoints,
      keyVaultCredential: azure.keyVaultCredential,
      authenticator: new CallerAuthenticator({
        authorityHost: azure.url,
        tenantId: azure.auth.tenantId,
        audiences: [azure.auth.audience],
      }),
      queue,
      secretCacheSeconds: options.secretCacheSeconds ?? 300,
      waitMaxSeconds: 60,
      workerConcurrency: options.workerConcurrency ?? 8,
      subscriptionConcurrency: options.subscriptionConcurrency ?? 8,
      armRetry: { retryDelayInMs: 50, maxRetryDelayInMs: 2000 },
    },
  })
  await app.ready()
  const tokens = new Map<DemoRole, string>()
  const as = async (role: DemoRole) => {
    const token = tokens.get(role) ?? (await azure.token(role))
    tokens.set(role, token)
    return { token, request: supertest.agent(app.server).auth(token, { type: 'bearer' }) }
  }
  // The demo registry and grants, through the API as an admin would.
  await azure.register(app)
  return {
    app,
    prisma,
    azure,
    logs,
    as,
    close: async () => {
      await app.close()
      await queue.stop(5000)
      await streams.close()
      await prisma.$disconnect()
      if (!options.azure) await azure.close()
    },
  }
}
