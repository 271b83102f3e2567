// `npm run db:migrate`: applies prisma/migrations to DATABASE_URL (or to the embedded server when
// DATABASE_URL is unset), as `prisma migrate deploy` would, without the native schema engine.
import { loadConfig } from '../config.ts'
import { createLogger } from '../logger.ts'
import { openDatabase } from './index.ts'

const config = loadConfig()
const log = createLogger(config.LOG_LEVEL).child({ module: 'db:migrate' })
try {
  const database = await openDatabase({ ...config, MIGRATE_ON_START: true }, log)
  await database.close()
} catch (err) {
  log.fatal({ err }, err instanceof Error ? err.message : 'migration failed')
  process.exitCode = 1
}
