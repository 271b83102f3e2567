import closeWithGrace from 'close-with-grace'
import { buildApp, type App } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { createPrismaClient, type PrismaClient } from './db/client.ts'
import { type Database, openDatabase } from './db/index.ts'
import { migrationNames } from './db/migrate.ts'
import { createLogger } from './logger.ts'

// The process: configuration, logger, database, listen, and a graceful stop on SIGTERM/SIGINT
// (stop accepting, let in-flight requests finish, close the pool, stop embedded Postgres, exit 0).

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  createLogger('info').fatal(err.message)
  process.exit(1)
}

const log = createLogger(config.LOG_LEVEL)
let database: Database | undefined
let prisma: PrismaClient | undefined
let app: App | undefined

// Registered before anything starts, so a signal during start-up also stops what has started.
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'stopping after an unexpected error')
  else log.info({ signal }, 'stopping: finishing in-flight requests')
  try {
    await app?.close()
  } finally {
    await prisma?.$disconnect()
    await database?.close()
  }
  log.info('stopped')
})

try {
  database = await openDatabase(config, log)
  prisma = createPrismaClient({ connectionString: database.connectionString, poolMax: config.DB_POOL_MAX, log })
  app = await buildApp({ logger: log, prisma, migrations: await migrationNames() })
  const address = await app.listen({ host: config.HOST, port: config.PORT })
  log.info(
    { url: address, database: database.embedded ? 'embedded' : 'DATABASE_URL' },
    `ipam-broker is listening on ${address} — try: curl ${address}/readyz`,
  )
} catch (err) {
  log.fatal({ err }, `ipam-broker could not start: ${err instanceof Error ? err.message : String(err)}`)
  await app?.close().catch(() => undefined)
  await prisma?.$disconnect().catch(() => undefined)
  await database?.close().catch(() => undefined)
  process.exit(1)
}
