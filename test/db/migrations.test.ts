import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  applyMigrations,
  diffMigrationsToSchema,
  MIGRATIONS_DIR,
  migrationNames,
  SCHEMA_FILE,
} from '../../src/db/migrate.ts'
import { query, scratchDatabase, testDatabaseUrl } from '../helpers/database.ts'

/** The engine prints this comment when there is nothing to do. */
function statements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((line) => line.trim() && !line.trim().startsWith('--'))
    .map((line) => line.trim())
}

describe('migrations', () => {
  let schema: string
  before(async () => {
    schema = await readFile(SCHEMA_FILE, 'utf8')
  })

  it('schema.prisma and prisma/migrations describe the same database (no drift)', async () => {
    const drift = await diffMigrationsToSchema(testDatabaseUrl(), schema)
    assert.deepEqual(
      statements(drift),
      [],
      `schema.prisma differs from prisma/migrations; add a migration (npm run db:new-migration -- <name>):\n${drift}`,
    )
  })

  it('the drift check notices a schema change that has no migration', async () => {
    const edited = schema.replace(/(model Allocation \{\n)/, '$1  costCentre String? @map("cost_centre")\n')
    assert.notEqual(edited, schema)
    const drift = statements(await diffMigrationsToSchema(testDatabaseUrl(), edited))
    assert.ok(
      drift.some((line) => /ALTER TABLE "allocation" ADD COLUMN\s+"cost_centre" TEXT/.test(line)),
      drift.join('\n'),
    )
  })

  describe('on a new database', () => {
    let scratch: Awaited<ReturnType<typeof scratchDatabase>>
    before(async () => {
      scratch = await scratchDatabase({ migrate: false })
    })
    after(async () => scratch.drop())

    it('applies every migration and records it as prisma migrate deploy does', async () => {
      const names = await migrationNames()
      assert.ok(names.length > 0)
      assert.deepEqual(await applyMigrations(scratch.url), names)
      const rows = await query<{ migration_name: string; checksum: string; applied_steps_count: number }>(
        scratch.url,
        `SELECT migration_name, checksum, applied_steps_count FROM _prisma_migrations
          WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
      )
      assert.deepEqual(
        rows.map((row) => row.migration_name),
        names,
      )
      for (const row of rows) {
        const sql = await readFile(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'))
        // Prisma's checksum is the SHA-256 of the migration file: `prisma migrate deploy` accepts these rows.
        assert.equal(row.checksum, createHash('sha256').update(sql).digest('hex'))
        assert.equal(row.applied_steps_count, 1)
      }
    })

    it('is idempotent, and safe when several processes migrate at once', async () => {
      const results = await Promise.all([applyMigrations(scratch.url), applyMigrations(scratch.url)])
      assert.deepEqual(results, [[], []])
    })
  })
})

describe('ledger integrity', () => {
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>
  let allocationId: string
  before(async () => {
    scratch = await scratchDatabase()
    const [row] = await query<{ id: string }>(
      scratch.url,
      `WITH mt AS (INSERT INTO management_tenant (id, tenant_id, display_name, network_manager_id, updated_at)
                   VALUES (gen_random_uuid(), gen_random_uuid(), 'A', '/nm', now()) RETURNING id),
            cr AS (INSERT INTO credential_reference (id, app_id, vault_url, secret_name)
                   VALUES (gen_random_uuid(), gen_random_uuid(), 'https://kv', 's') RETURNING id),
            t AS (INSERT INTO managed_tenant (id, tenant_id, display_name, management_tenant_id, credential_reference_id, updated_at)
                  SELECT gen_random_uuid(), gen_random_uuid(), 'B', mt.id, cr.id, now() FROM mt, cr RETURNING id),
            v AS (INSERT INTO virtual_network (id, managed_tenant_id, subscription_id, resource_group, name, resource_id,
                                               state, requester_oid, updated_at)
                  SELECT gen_random_uuid(), t.id, gen_random_uuid(), 'rg', 'vnet', '/vnet', 'deploying', 'oid', now() FROM t
                  RETURNING id, managed_tenant_id),
            op AS (INSERT INTO operation (id, kind, virtual_network_id, requester_oid, request_hash, request, updated_at)
                   SELECT gen_random_uuid(), 'deploy', v.id, 'oid', 'h', '{}', now() FROM v
                   RETURNING id, virtual_network_id)
       INSERT INTO allocation (id, operation_id, virtual_network_id, managed_tenant_id, subscription_id, resource_group,
                               vnet_name, vnet_resource_id, pool_id, requested_size, requester_oid, updated_at)
       SELECT gen_random_uuid(), op.id, v.id, v.managed_tenant_id, gen_random_uuid(), 'rg', 'vnet', '/vnet', '/pool', 256,
              'oid', now()
         FROM op JOIN v ON v.id = op.virtual_network_id RETURNING id`,
    )
    allocationId = row!.id
    await query(
      scratch.url,
      `INSERT INTO allocation_event (allocation_id, type, actor, prefixes) VALUES ($1, 'allocated', 'test', '{10.20.0.0/22}')`,
      [allocationId],
    )
  })
  after(async () => scratch.drop())

  it('refuses to rewrite or delete ledger events', async () => {
    await assert.rejects(
      query(scratch.url, `UPDATE allocation_event SET actor = 'someone else'`),
      /append-only: UPDATE/,
    )
    await assert.rejects(query(scratch.url, `DELETE FROM allocation_event`), /append-only: DELETE/)
    await assert.rejects(query(scratch.url, `TRUNCATE allocation_event`), /append-only: TRUNCATE/)
    const [count] = await query<{ n: string }>(scratch.url, 'SELECT count(*) AS n FROM allocation_event')
    assert.equal(count?.n, '1')
  })

  it('stores prefixes as networks and answers containment in SQL', async () => {
    await assert.rejects(
      query(scratch.url, `INSERT INTO allocation_prefix (allocation_id, prefix) VALUES ($1, '10.20.0.1/22')`, [
        allocationId,
      ]),
      /allocation_prefix_is_network/,
    )
    await query(
      scratch.url,
      `INSERT INTO allocation_prefix (allocation_id, prefix) VALUES ($1, '10.20.0.0/22'), ($1, 'fd00:1::/64')`,
      [allocationId],
    )
    const holders = await query<{ prefix: string }>(
      scratch.url,
      `SELECT prefix::text FROM allocation_prefix WHERE prefix >>= $1::inet ORDER BY prefix`,
      ['10.20.3.7'],
    )
    assert.deepEqual(holders, [{ prefix: '10.20.0.0/22' }])
  })
})
