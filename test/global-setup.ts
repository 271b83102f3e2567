// node --test-global-setup: one fresh, migrated database for this run, dropped at the end. The server
// is TEST_DATABASE_URL's or DATABASE_URL's when set, else an embedded PostgreSQL under .data/.
// The run's folder collects every broker log and every secret the run used; the teardown scans the
// logs and the database for those secrets before the database is dropped (issue 5, point 4).
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { recordSecret, RUN_DIR_VARIABLE } from '../emulator/common/secret-record.ts'
import { dropDatabase, ensureDatabase, withDatabase } from '../src/db/databases.ts'
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { applyMigrations } from '../src/db/migrate.ts'
import { scanForLeaks } from './helpers/leak-scan.ts'

let embedded: EmbeddedPostgres | undefined
let databaseUrl: string | undefined
let runDir: string | undefined
let tornDown = false

export async function globalSetup() {
  const log = pino({ level: 'warn' })
  const given = process.env['TEST_DATABASE_URL'] ?? process.env['DATABASE_URL']
  embedded = given ? undefined : await startEmbeddedPostgres({ dataDir: '.data/test-postgres', log })
  const serverUrl = given ?? embedded!.connectionString('postgres')
  const runId = randomBytes(4).toString('hex')
  databaseUrl = withDatabase(serverUrl, `ipam_broker_test_${runId}`)
  runDir = path.join(tmpdir(), `ipam-broker-test-run-${runId}`)
  await mkdir(runDir, { recursive: true, mode: 0o700 })
  // Test files run in child processes, which inherit this environment.
  process.env[RUN_DIR_VARIABLE] = runDir
  recordSecret('database-password', decodeURIComponent(new URL(databaseUrl).password))
  await ensureDatabase(databaseUrl)
  await applyMigrations(databaseUrl)
  process.env['IPAM_TEST_DATABASE_URL'] = databaseUrl
  delete process.env['DATABASE_URL']
}

export async function globalTeardown() {
  // Node calls this again from its exit handler when it throws: the scan and the drop happen once.
  if (tornDown) return
  tornDown = true
  try {
    if (runDir && databaseUrl) await scanRun(runDir, databaseUrl)
  } finally {
    if (databaseUrl) await dropDatabase(databaseUrl)
    await embedded?.stop()
  }
}

async function scanRun(dir: string, url: string) {
  const { summary, leaks } = await scanForLeaks(dir, url)
  // The recorded secrets go either way; the logs stay only when they hold a leak, to be looked at.
  await rm(path.join(dir, 'secrets'), { recursive: true, force: true })
  process.stdout.write(`${summary}\n`)
  if (leaks.length === 0) return rm(dir, { recursive: true, force: true })
  process.stderr.write(`${leaks.map((leak) => `  ${leak}`).join('\n')}\n  (the logs are kept in ${dir})\n`)
  process.exitCode = 1
  throw new Error(`${leaks.length} secrets or tokens of this run were found in its logs or database`)
}
