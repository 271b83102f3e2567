import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { pino } from 'pino'
import { recordSecret } from '../emulator/common/secret-record.ts'
import { databaseName, withDatabase } from '../src/db/databases.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { migrationNames } from '../src/db/migrate.ts'
import { query, scratchDatabase } from './helpers/database.ts'
import {
  cleanEnv,
  freePort,
  httpStatus,
  PROJECT_ROOT,
  type RunningServer,
  spawnServer,
  waitFor,
} from './helpers/process.ts'

// The broker as users run it: a real process, started by `npm start` or by node, stopped by a signal.

async function waitUntilReady(server: RunningServer, baseUrl: string, timeoutMs = 60_000) {
  let exited = false
  void server.exited.then(() => (exited = true))
  try {
    await waitFor(
      'GET /readyz to answer 200',
      async () => {
        if (exited) throw new Error('the broker exited before it was ready')
        return (await httpStatus(`${baseUrl}/readyz`)) === 200 ? true : undefined
      },
      timeoutMs,
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${server.output()}`, { cause: err })
  }
}

function brokerPid(server: RunningServer): number {
  const pid = server.lines.find((line) => line['service'] === 'ipam-broker')?.['pid']
  assert.equal(typeof pid, 'number', 'the broker logs its pid')
  return pid as number
}

/**
 * Holds an exclusive lock on _prisma_migrations so that GET /readyz waits in the database, sends
 * SIGTERM while it waits, and checks the request still completes and the process exits 0.
 */
async function sigtermDuringSlowRequest(server: RunningServer, baseUrl: string, databaseUrl: string) {
  const locker = new pg.Client({ connectionString: databaseUrl })
  await locker.connect()
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE _prisma_migrations IN ACCESS EXCLUSIVE MODE')
  const inFlight = fetch(`${baseUrl}/readyz`)
  await waitFor(
    'GET /readyz to wait on the lock',
    async () => {
      const { rows } = await locker.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
      )
      return rows.length ? true : undefined
    },
    10_000,
  ).catch(async (err: Error) => {
    const { rows } = await locker.query(
      `SELECT pid, state, wait_event_type, left(query, 100) AS query FROM pg_stat_activity WHERE datname = current_database()`,
    )
    await locker.end()
    throw new Error(`${err.message}\nsessions: ${JSON.stringify(rows)}\n${server.output()}`, { cause: err })
  })
  // The broker's own pid, as a process manager would signal it (npm start sits between the test and it).
  process.kill(brokerPid(server), 'SIGTERM')
  // Stop accepting: new requests are refused (or told 503 on a reused connection) while the slow one waits.
  await waitFor(
    'the broker to stop accepting requests',
    async () => {
      const status = await httpStatus(`${baseUrl}/healthz`)
      return status === undefined || status === 503 ? true : undefined
    },
    10_000,
  )
  await locker.query('COMMIT')
  await locker.end()
  const response = await inFlight
  assert.equal(response.status, 200, 'the in-flight request completed')
  assert.equal(((await response.json()) as { status: string }).status, 'ready')
  const { code, signal } = await server.exited
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.output())
}

describe('the broker process', () => {
  let workDir: string
  before(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'ipam-broker-'))
    // Postgres runs as its own OS user when the tests run as root: it must be able to reach the data folder.
    await chmod(workDir, 0o755)
  })
  after(async () => rm(workDir, { recursive: true, force: true }))

  it('npm start with no database configured: embedded Postgres, ready within 60 s, clean stop on SIGTERM', async () => {
    const dataDir = path.join(workDir, 'postgres')
    const port = await freePort()
    const baseUrl = `http://127.0.0.1:${port}`
    const started = Date.now()
    const server = spawnServer('npm', cleanEnv({ PORT: String(port), EMBEDDED_POSTGRES_DIR: dataDir }))
    try {
      await waitUntilReady(server, baseUrl)
      const seconds = (Date.now() - started) / 1000
      console.log(`npm start answered GET /readyz 200 after ${seconds.toFixed(1)} s (fresh data folder)`)
      assert.ok(seconds < 60)
      assert.ok(
        server.lines.some((line) => String(line['msg']).includes(`curl ${baseUrl}/readyz`)),
        'prints how to call it',
      )

      const pgPort = server.lines.find((line) => line['msg'] === 'embedded PostgreSQL started')?.['port']
      assert.equal(typeof pgPort, 'number')
      const password = (await readFile(`${dataDir}.password`, 'utf8')).trim()
      recordSecret('database-password', password)
      const databaseUrl = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${String(pgPort)}/ipam_broker`
      const applied = await query<{ migration_name: string }>(
        databaseUrl,
        'SELECT migration_name FROM _prisma_migrations ORDER BY 1',
      )
      assert.deepEqual(
        applied.map((row) => row.migration_name),
        await migrationNames(),
      )

      await sigtermDuringSlowRequest(server, baseUrl, databaseUrl)
      assert.equal(existsSync(path.join(dataDir, 'postmaster.pid')), false, 'embedded Postgres was stopped')
      await assert.rejects(query(databaseUrl, 'SELECT 1'), /ECONNREFUSED/)
    } finally {
      server.child.kill('SIGKILL')
    }
  })

  it('npm start prints a token and a request that deploys a VNet; npm run token gives fresh tokens per role', async () => {
    const dataDir = path.join(workDir, 'postgres-demo')
    const stateFile = path.join(workDir, 'emulator-demo', 'state.json')
    const port = await freePort()
    const env = cleanEnv({ PORT: String(port), EMBEDDED_POSTGRES_DIR: dataDir, EMULATOR_STATE_FILE: stateFile })
    const server = spawnServer('npm', env)
    try {
      const baseUrl = `http://127.0.0.1:${port}`
      await waitUntilReady(server, baseUrl)
      const printed = await waitFor('the demo banner', () => {
        const token = /export TOKEN=(\S+)/.exec(server.output())?.[1]
        const body = /-d '(\{.*\})'/.exec(server.output())?.[1]
        return token && body ? { token, body } : undefined
      })
      // The printed request, as a user would paste it.
      const response = await fetch(`${baseUrl}/v1/vnets?wait=30`, {
        method: 'POST',
        headers: { authorization: `Bearer ${printed.token}`, 'content-type': 'application/json' },
        body: printed.body,
      })
      const operation = (await response.json()) as { state: string; result: { addressPrefixes: string[] } }
      assert.equal(response.status, 200, JSON.stringify(operation))
      assert.equal(operation.state, 'succeeded')
      assert.equal(operation.result.addressPrefixes.length, 1)

      for (const [role, status] of [
        ['Reader', 200],
        ['Requester', 200],
        ['Admin', 200],
      ] as const) {
        const run = spawnSync('npm', ['run', '-s', 'token', '--', '--role', role], {
          cwd: PROJECT_ROOT,
          env,
          encoding: 'utf8',
        })
        assert.equal(run.status, 0, run.stderr)
        const token = run.stdout.trim().split('\n').at(-1)!
        const list = await fetch(`${baseUrl}/v1/vnets`, { headers: { authorization: `Bearer ${token}` } })
        assert.equal(list.status, status, `${role}: ${await list.text()}`)
        assert.match(run.stderr, new RegExp(`${role} token from https://localhost:`))
      }
      const reader = spawnSync('npm', ['run', '-s', 'token', '--', '--role', 'Reader'], {
        cwd: PROJECT_ROOT,
        env,
        encoding: 'utf8',
      })
      const readerToken = reader.stdout.trim().split('\n').at(-1)!
      const denied = await fetch(`${baseUrl}/v1/vnets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${readerToken}`, 'content-type': 'application/json' },
        body: printed.body,
      })
      assert.equal(denied.status, 403, 'a Reader may not request')
      const wrong = spawnSync('npm', ['run', '-s', 'token', '--', '--role', 'Owner'], {
        cwd: PROJECT_ROOT,
        env,
        encoding: 'utf8',
      })
      assert.equal(wrong.status, 2)
      assert.match(wrong.stderr, /--role must be one of Requester, Reader, Admin/)
    } finally {
      server.child.kill('SIGTERM')
      await server.exited
    }
  })

  it('restarts on the same embedded data folder without initialising it again', async () => {
    const dataDir = path.join(workDir, 'postgres')
    const port = await freePort()
    const server = spawnServer('node', cleanEnv({ PORT: String(port), EMBEDDED_POSTGRES_DIR: dataDir }))
    try {
      await waitUntilReady(server, `http://127.0.0.1:${port}`)
      assert.ok(!server.lines.some((line) => String(line['msg']).includes('initialising')))
      assert.ok(server.lines.some((line) => line['msg'] === 'database schema is up to date'))
      server.child.kill('SIGINT')
      assert.equal((await server.exited).code, 0)
    } finally {
      server.child.kill('SIGKILL')
    }
  })

  it('refuses a data folder another live process uses, and reclaims one left by a killed broker', async () => {
    const dataDir = path.join(workDir, 'postgres')
    const port = await freePort()
    const server = spawnServer('node', cleanEnv({ PORT: String(port), EMBEDDED_POSTGRES_DIR: dataDir }))
    const log = pino({ level: 'silent' })
    try {
      await waitUntilReady(server, `http://127.0.0.1:${port}`)
      const pid = brokerPid(server)
      await assert.rejects(
        startEmbeddedPostgres({ dataDir, log }),
        new RegExp(`in use by the PostgreSQL of process ${pid}`),
      )
      assert.equal(await httpStatus(`http://127.0.0.1:${port}/readyz`), 200, 'the running broker kept its database')

      server.child.kill('SIGKILL')
      await server.exited
      const reclaimed = await startEmbeddedPostgres({ dataDir, log })
      const applied = await query<{ n: string }>(
        reclaimed.connectionString('ipam_broker'),
        'SELECT count(*) AS n FROM _prisma_migrations',
      )
      assert.equal(Number(applied[0]?.n), (await migrationNames()).length, 'the data survived the kill')
      await reclaimed.stop()
      assert.equal(existsSync(path.join(dataDir, 'postmaster.pid')), false)
    } finally {
      server.child.kill('SIGKILL')
    }
  })

  describe('with DATABASE_URL', () => {
    let scratch: Awaited<ReturnType<typeof scratchDatabase>>
    before(async () => {
      scratch = await scratchDatabase({ migrate: false })
    })
    after(async () => scratch.drop())

    it('uses that server, migrates it, and leaves no connection open after SIGTERM', async () => {
      const port = await freePort()
      const baseUrl = `http://127.0.0.1:${port}`
      const unusedDataDir = path.join(workDir, 'not-used')
      const server = spawnServer(
        'node',
        cleanEnv({ PORT: String(port), DATABASE_URL: scratch.url, EMBEDDED_POSTGRES_DIR: unusedDataDir }),
      )
      try {
        await waitUntilReady(server, baseUrl)
        assert.equal(existsSync(unusedDataDir), false, 'no embedded Postgres was started')
        const applied = await query<{ migration_name: string }>(
          scratch.url,
          'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY 1',
        )
        assert.deepEqual(
          applied.map((row) => row.migration_name),
          await migrationNames(),
        )

        await sigtermDuringSlowRequest(server, baseUrl, scratch.url)
        const sessions = await query<{ n: string }>(
          withDatabase(scratch.url, 'postgres'),
          'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1',
          [databaseName(scratch.url)],
        )
        assert.equal(sessions[0]?.n, '0', 'no connection to the database is left open')
      } finally {
        server.child.kill('SIGKILL')
      }
    })
  })

  it('refuses to boot on invalid configuration, naming the variable', async () => {
    const dataDir = path.join(workDir, 'never-created')
    const server = spawnServer('node', cleanEnv({ PORT: 'abc', EMBEDDED_POSTGRES_DIR: dataDir }))
    const { code } = await server.exited
    assert.equal(code, 1)
    assert.match(server.output(), /Invalid configuration: PORT must be integer/)
    assert.equal(existsSync(dataDir), false, 'nothing was started')
  })
})
