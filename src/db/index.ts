import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { ensureDatabase } from './databases.ts'
import { startEmbeddedPostgres } from './embedded-postgres.ts'
import { applyMigrations } from './migrate.ts'

export const EMBEDDED_DATABASE_NAME = 'ipam_broker'

export interface Database {
  connectionString: string
  /** True when this process started the server itself (no DATABASE_URL). */
  embedded: boolean
  /** Stops the embedded server, if this process started one. */
  close(): Promise<void>
}

/**
 * The database the broker runs on: the server DATABASE_URL names, or an embedded PostgreSQL when
 * it is unset. Pending migrations are applied first unless MIGRATE_ON_START is false.
 */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  const embedded = config.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: config.EMBEDDED_POSTGRES_DIR, log: log.child({ module: 'postgres' }) })
  try {
    const connectionString = config.DATABASE_URL ?? embedded!.connectionString(EMBEDDED_DATABASE_NAME)
    if (embedded) await ensureDatabase(connectionString)
    if (config.MIGRATE_ON_START) {
      const applied = await applyMigrations(connectionString)
      log.info({ applied }, applied.length ? 'migrations applied' : 'database schema is up to date')
    }
    return { connectionString, embedded: !!embedded, close: async () => embedded?.stop() }
  } catch (err) {
    await embedded?.stop()
    throw err
  }
}
