import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { it } from 'node:test'
import { pino } from 'pino'
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts'
import { query } from '../helpers/database.ts'

it('a data folder under a private directory (a mktemp -d checkout, run as root) is moved where postgres can reach it', async () => {
  const home = await mkdtemp(path.join(tmpdir(), 'ipam-broker-private-'))
  assert.equal((await stat(home)).mode & 0o777, 0o700)
  const lines: Record<string, unknown>[] = []
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
        done()
      },
    }),
  )
  const requested = path.join(home, '.data', 'postgres')
  const postgres = await startEmbeddedPostgres({ dataDir: requested, log })
  try {
    const [row] = await query<{ one: number }>(postgres.connectionString('postgres'), 'SELECT 1 AS one')
    assert.equal(row?.one, 1)
    const moved = lines.find((line) => line['requested'] === requested)
    if (process.getuid?.() === 0) {
      assert.ok(moved, 'the relocation is logged')
      assert.match(String(moved['dataDir']), /^\/var\/tmp\/ipam-broker\/postgres-[0-9a-f]{12}$/)
    } else {
      assert.equal(moved, undefined, 'without root, postgres runs as this user and reaches the folder')
    }
  } finally {
    await postgres.stop()
    const moved = lines.find((line) => line['requested'] === requested)
    if (moved) await rm(String(moved['dataDir']), { recursive: true, force: true })
    await rm(home, { recursive: true, force: true })
  }
})
