import { pino } from 'pino'
import { type AppDependencies, buildApp, type App } from '../../src/app.ts'
import { createPrismaClient, type PrismaClient } from '../../src/db/client.ts'
import { migrationNames } from '../../src/db/migrate.ts'
import { loggerOptions } from '../../src/logger.ts'
import { testDatabaseUrl } from './database.ts'
import { capturedLog } from './run-logs.ts'

export interface TestApp {
  app: App
  prisma: PrismaClient
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  close(): Promise<void>
}

/** The production app on the run's database, with its log captured for assertions. */
export interface TestAppOptions {
  databaseUrl?: string
  /** Extra routes a test needs, added before the app is ready. */
  extraRoutes?: (app: App) => void
  http?: AppDependencies['http']
}

export async function buildTestApp({
  databaseUrl = testDatabaseUrl(),
  extraRoutes,
  http,
}: TestAppOptions = {}): Promise<TestApp> {
  const { logs, stream } = capturedLog('app')
  const logger = pino(loggerOptions('info'), stream)
  const prisma = createPrismaClient({ connectionString: databaseUrl, poolMax: 2 })
  const app = await buildApp({ logger, prisma, migrations: await migrationNames(), ...(http && { http }) })
  extraRoutes?.(app)
  await app.ready()
  return {
    app,
    prisma,
    logs,
    close: async () => {
      await app.close()
      await prisma.$disconnect()
    },
  }
}
