import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { createPrismaClient } from './db/client.ts'
import { openDatabase } from './db/index.ts'
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
const database = await openDatabase(config, log)
const prisma = createPrismaClient({ connectionString: database.connectionString, poolMax: config.DB_POOL_MAX })
const app = await buildApp({ logger: log, prisma, migrations: await migrationNames() })

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'stopping after an unexpected error')
  else log.info({ signal }, 'stopping: finishing in-flight requests')
  await app.close()
  await prisma.$disconnect()
  await database.close()
  log.info('stopped')
})

const address = await app.listen({ host: config.HOST, port: config.PORT })
log.info(
  { url: address, database: database.embedded ? 'embedded' : 'DATABASE_URL' },
  `ipam-broker is listening on ${address} — try: curl ${address}/readyz`,
)
