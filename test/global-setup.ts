// node --test-global-setup: one fresh, migrated database for this run, dropped at the end. The server
// is TEST_DATABASE_URL's or DATABASE_URL's when set, else an embedded PostgreSQL under .data/.
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { dropDatabase, ensureDatabase, withDatabase } from '../src/db/databases.ts'
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'

let embedded: EmbeddedPostgres | undefined
let databaseUrl: string | undefined

export async function globalSetup() {
  const log = pino({ level: 'warn' })
  const given = process.env['TEST_DATABASE_URL'] ?? process.env['DATABASE_URL']
  embedded = given ? undefined : await startEmbeddedPostgres({ dataDir: '.data/test-postgres', log })
  const serverUrl = given ?? embedded!.connectionString('postgres')
  databaseUrl = withDatabase(serverUrl, `ipam_broker_test_${randomBytes(4).toString('hex')}`)
  await ensureDatabase(databaseUrl)
  await applyMigrations(databaseUrl)
  // Test files run in child processes, which inherit this environment.
  process.env['IPAM_TEST_DATABASE_URL'] = databaseUrl
  delete process.env['DATABASE_URL']
}

export async function globalTeardown() {
  if (databaseUrl) await dropDatabase(databaseUrl)
  await embedded?.stop()
}
