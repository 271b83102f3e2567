import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { dropDatabase, ensureDatabase, withDatabase } from '../../src/db/databases.ts'
import { applyMigrations } from '../../src/db/migrate.ts'

/** The run's migrated database (created by test/global-setup.ts). */
export function testDatabaseUrl(): string {
  const url = process.env['IPAM_TEST_DATABASE_URL']
  if (!url) throw new Error('IPAM_TEST_DATABASE_URL is unset: run the tests with `npm test`')
  return url
}

/** A new empty database on the test server, migrated unless asked not to; drop it with the returned function. */
export async function scratchDatabase({ migrate = true } = {}): Promise<{ url: string; drop: () => Promise<void> }> {
  const url = withDatabase(testDatabaseUrl(), `ipam_broker_scratch_${randomBytes(4).toString('hex')}`)
  await ensureDatabase(url)
  if (migrate) await applyMigrations(url)
  return { url, drop: () => dropDatabase(url) }
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}
