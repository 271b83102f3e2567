import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { query, scratchDatabase } from './database.ts'
import { scanForLeaks } from './leak-scan.ts'

// The scan the run's teardown does (test/global-setup.ts), on a folder and a database of its own, with
// made-up secrets: it must be able to fail, or a clean run proves nothing.

describe("the test run's leak scan", () => {
  let dir: string
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ipam-broker-leak-scan-'))
    scratch = await scratchDatabase({ migrate: false })
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
    await scratch.drop()
  })

  const jwt = () => `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.${randomBytes(256).toString('base64url')}`

  it('finds whole tokens, a signature alone, escaped values and database rows, and masks them all', async () => {
    const logged = jwt()
    const truncated = jwt()
    const banner = jwt()
    const clean = jwt()
    const password = randomBytes(30).toString('base64url')
    const quoted = `with "quotes" and \\ ${randomBytes(8).toString('hex')}`
    const secrets = [
      { kind: 'access-token', value: logged },
      { kind: 'access-token', value: truncated },
      { kind: 'access-token', value: banner },
      { kind: 'access-token', value: clean },
      { kind: 'app-password', value: password },
      { kind: 'vault-secret', value: quoted },
      { kind: 'vault-secret', value: 'x' },
    ]
    await mkdir(path.join(dir, 'secrets'))
    await mkdir(path.join(dir, 'logs'))
    await writeFile(path.join(dir, 'secrets/1.jsonl'), secrets.map((s) => `${JSON.stringify(s)}\n`).join(''))
    await writeFile(
      path.join(dir, 'logs/a.test.ts.1.1.broker.log'),
      [
        JSON.stringify({ level: 'info', msg: `caller sent ${logged}` }),
        JSON.stringify({ level: 'info', detail: { tail: truncated.split('.')[2] } }),
        JSON.stringify({ level: 'warn', secret: quoted }),
        '',
      ].join('\n'),
    )
    // The demo banner's token line is not a log line; the same token anywhere else is a leak.
    await writeFile(
      path.join(dir, 'logs/b.test.ts.2.1.process.stdout.log'),
      `A Requester token for the demo, valid one hour:\n  export TOKEN=${banner}\n{"msg":"again ${banner}"}\n`,
    )
    await query(scratch.url, 'CREATE SCHEMA "queue-like"')
    await query(scratch.url, 'CREATE TABLE "queue-like".job (id int, data jsonb)')
    await query(scratch.url, `INSERT INTO "queue-like".job VALUES (1, '{}'), (2, $1)`, [
      JSON.stringify({ note: password }),
    ])

    const { summary, leaks } = await scanForLeaks(dir, scratch.url)

    assert.deepEqual(leaks.map((leak) => leak.split(': …')[0]).sort(), [
      'access-token in logs/a.test.ts.1.1.broker.log:1',
      'access-token in logs/b.test.ts.2.1.process.stdout.log:3',
      'access-token, signature in logs/a.test.ts.1.1.broker.log:2',
      'app-password in table "queue-like".job, row 2',
      'vault-secret, JSON-escaped in logs/a.test.ts.1.1.broker.log:3',
    ])
    const report = leaks.join('\n')
    for (const { value } of secrets.filter((s) => s.value.length > 1)) {
      assert.ok(!report.includes(value), 'the report masks what it found')
      if (value.startsWith('eyJ')) assert.ok(!report.includes(value.split('.')[2]!))
    }
    assert.match(report, /caller sent \[access-token\]/)
    assert.match(
      summary,
      /^leak scan: 6 secrets and tokens checked \(4 access-token, 1 app-password, 1 vault-secret; 1 under 8 characters not searched\) in 5 log lines of 2 files \(1 demo banner token lines skipped\) and 2 rows of 1 tables: 5 FOUND$/,
    )
  })
})
