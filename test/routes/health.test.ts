import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import request from 'supertest'
import { buildTestApp, type TestApp } from '../helpers/app.ts'
import { migrationNames } from '../../src/db/migrate.ts'
import { query, scratchDatabase } from '../helpers/database.ts'

describe('health probes', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp()
  })
  after(async () => t.close())

  it('GET /healthz answers while the process is alive', async () => {
    const res = await request(t.app.server).get('/healthz').expect(200)
    assert.deepEqual(res.body, { status: 'ok' })
  })

  it('GET /readyz is 200 on a migrated database', async () => {
    const res = await request(t.app.server).get('/readyz').expect(200)
    assert.equal(res.body.status, 'ready')
    assert.equal(res.body.checks.database.status, 'up')
    assert.equal(res.body.checks.migrations.status, 'up')
  })

  describe('GET /readyz is 503 until every migration is applied', () => {
    let scratch: Awaited<ReturnType<typeof scratchDatabase>>
    let unmigrated: TestApp
    before(async () => {
      scratch = await scratchDatabase({ migrate: false })
      unmigrated = await buildTestApp({ databaseUrl: scratch.url })
    })
    after(async () => {
      await unmigrated.close()
      await scratch.drop()
    })

    it('names the missing table, then the pending migration', async () => {
      const empty = await request(unmigrated.app.server).get('/readyz').expect(503)
      assert.equal(empty.body.checks.database.status, 'up')
      assert.match(empty.body.checks.migrations.detail, /no _prisma_migrations table/)

      await query(
        scratch.url,
        `CREATE TABLE _prisma_migrations (id text, checksum text, finished_at timestamptz, migration_name text,
           logs text, rolled_back_at timestamptz, started_at timestamptz, applied_steps_count int)`,
      )
      const behind = await request(unmigrated.app.server).get('/readyz').expect(503)
      assert.equal(behind.body.status, 'not-ready')
      assert.deepEqual(behind.body.checks.migrations.pending, await migrationNames())
    })
  })

  describe('when the database is unreachable', () => {
    let offline: TestApp
    before(async () => {
      offline = await buildTestApp({ databaseUrl: 'postgresql://nobody:nothing@127.0.0.1:1/none' })
    })
    after(async () => offline.close())

    it('readiness fails without leaking the connection error', async () => {
      const res = await request(offline.app.server).get('/readyz').expect(503)
      assert.deepEqual(res.body.checks.database, { status: 'down', detail: 'database unreachable' })
      assert.doesNotMatch(JSON.stringify(res.body), /nothing|ECONNREFUSED/)
    })
  })
})
