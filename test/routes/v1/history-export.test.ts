import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { seedHistory } from '../../../bench/history-seed.ts'
import { CSV_HEADER } from '../../../src/services/history.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { query, scratchDatabase } from '../../helpers/database.ts'

// Exports of 100,000 rows through a listening broker: every CSV and NDJSON line parses, the ids are
// exactly the database's, and the memory of the process (the broker runs in this one) stays flat while
// the rows stream: its RSS grows by far less than the bytes sent, and its live heap (measured after a
// forced collection, mid-export) by a few MB — a broker that built the export in memory before sending
// it would hold the whole of it at that point.

const ROWS = 100_000
const COLUMNS = CSV_HEADER.split(',')

// A collector to call mid-export: without it, the heap's size is mostly garbage not yet collected.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** First 48 bits of md5(id) as a number, summed over ids in the database and over exported ids alike. */
const idHash = (id: string) => BigInt(`0x${createHash('md5').update(id).digest('hex').slice(0, 12)}`)

interface Export {
  status: number
  contentType: string
  lines: number
  bytes: number
  seconds: number
  ids: { count: number; checksum: bigint; set?: Set<string> }
  memory: { rssBefore: number; rssPeak: number; heapBefore: number; heapLivePeak: number }
}

/** RFC 4180 fields of one line (no line breaks inside quotes in this data: the line must end outside quotes). */
function csvFields(line: string): string[] {
  const fields: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"'
        i++
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"' && field === '') quoted = true
    else if (c === ',') {
      fields.push(field)
      field = ''
    } else field += c
  }
  assert.equal(quoted, false, `unterminated quoted field in ${line}`)
  fields.push(field)
  return fields
}

/**
 * GETs an export over real HTTP and reads it as it arrives, line by line, keeping nothing but counts
 * (and, with `keepIds`, the set of ids). Memory is sampled every 20 ms; at 25%, 50% and 75% of the
 * rows the heap is collected and its live size read.
 */
async function download(port: number, token: string, accept: string, keepIds: boolean): Promise<Export> {
  gc()
  const rssBefore = process.memoryUsage.rss()
  const heapBefore = process.memoryUsage().heapUsed
  let rssPeak = rssBefore
  let heapLivePeak = heapBefore
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 20)
  const checkpoints = [ROWS / 4, ROWS / 2, (3 * ROWS) / 4]
  const started = performance.now()
  try {
    return await new Promise<Export>((resolve, reject) => {
      const request = http.get(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/allocations?sort=createdAt',
          headers: { authorization: `Bearer ${token}`, accept },
        },
        (response) => {
          const csv = accept === 'text/csv'
          const ids = { count: 0, checksum: 0n, ...(keepIds && { set: new Set<string>() }) }
          let lines = 0
          let bytes = 0
          let rest = ''
          const line = (text: string) => {
            lines++
            let id: string
            if (csv) {
              const fields = csvFields(text)
              if (lines === 1) {
                assert.deepEqual(fields, COLUMNS)
                return
              }
              assert.equal(fields.length, COLUMNS.length, `CSV line ${lines} has ${fields.length} fields: ${text}`)
              id = fields[0]!
            } else {
              const row = JSON.parse(text) as Record<string, unknown>
              assert.deepEqual(Object.keys(row), COLUMNS, `NDJSON line ${lines}`)
              id = row['id'] as string
            }
            ids.count++
            ids.checksum += idHash(id)
            ids.set?.add(id)
            if (ids.count === checkpoints[0]) {
              checkpoints.shift()
              gc()
              heapLivePeak = Math.max(heapLivePeak, process.memoryUsage().heapUsed)
            }
          }
          response.setEncoding('utf8')
          response.on('data', (chunk: string) => {
            bytes += Buffer.byteLength(chunk)
            const parts = (rest + chunk).split('\n')
            rest = parts.pop()!
            for (const part of parts) line(part)
          })
          response.on('end', () => {
            try {
              assert.equal(rest, '', 'the export ends with a line break')
              resolve({
                status: response.statusCode ?? 0,
                contentType: response.headers['content-type'] ?? '',
                lines,
                bytes,
                seconds: (performance.now() - started) / 1000,
                ids,
                memory: { rssBefore, rssPeak, heapBefore, heapLivePeak },
              })
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)))
            }
          })
          response.on('error', reject)
        },
      )
      request.on('error', reject)
    })
  } finally {
    clearInterval(sampler)
  }
}

const MB = 1024 * 1024
const describeRun = (name: string, run: Export) => {
  const { rssBefore, rssPeak, heapBefore, heapLivePeak } = run.memory
  return (
    `${name}: ${run.ids.count.toLocaleString('en')} rows, ${(run.bytes / MB).toFixed(1)} MB in ${run.seconds.toFixed(2)} s ` +
    `(${Math.round(run.ids.count / run.seconds).toLocaleString('en')} rows/s); RSS ${(rssBefore / MB).toFixed(1)} MB -> peak ` +
    `${(rssPeak / MB).toFixed(1)} MB (+${((rssPeak - rssBefore) / MB).toFixed(1)} MB); live heap ${(heapBefore / MB).toFixed(1)} MB -> ` +
    `peak ${(heapLivePeak / MB).toFixed(1)} MB mid-export (+${((heapLivePeak - heapBefore) / MB).toFixed(1)} MB)`
  )
}

describe('allocation exports at 100,000 rows', () => {
  let broker: TestBroker
  let drop: () => Promise<void>
  let port: number
  let token: string
  let expected: { count: number; checksum: bigint }

  before(async () => {
    const database = await scratchDatabase()
    drop = database.drop
    broker = await startTestBroker({ databaseUrl: database.url, workerConcurrency: 0 })
    await seedHistory(database.url, { allocations: ROWS })
    const [sums] = await query<{ count: number; checksum: string }>(
      database.url,
      `SELECT count(*)::int AS count, sum(('x' || left(md5(id::text), 12))::bit(48)::bigint)::text AS checksum FROM allocation`,
    )
    expected = { count: sums!.count, checksum: BigInt(sums!.checksum) }
    assert.equal(expected.count, ROWS)
    await broker.app.listen({ host: '127.0.0.1', port: 0 })
    port = (broker.app.server.address() as AddressInfo).port
    ;({ token } = await broker.as('Reader'))
  })
  after(async () => {
    await broker?.close()
    await drop?.()
  })

  for (const [name, accept] of [
    ['CSV', 'text/csv'],
    ['NDJSON', 'application/x-ndjson'],
  ] as const) {
    it(`exports all rows as ${name}: every line parses, each id once, the database's ids`, async (t) => {
      const run = await download(port, token, accept, true)
      t.diagnostic(describeRun(`${name} (first export)`, run))
      assert.equal(run.status, 200)
      assert.match(run.contentType, new RegExp(`^${accept}; charset=utf-8`))
      assert.equal(run.lines, ROWS + (accept === 'text/csv' ? 1 : 0))
      assert.equal(run.ids.set?.size, ROWS, 'no id twice')
      assert.deepEqual({ count: run.ids.count, checksum: run.ids.checksum }, expected)
    })
  }

  for (const [name, accept] of [
    ['CSV', 'text/csv'],
    ['NDJSON', 'application/x-ndjson'],
  ] as const) {
    it(`streams a ${name} export in flat memory`, async (t) => {
      // After the exports above: the broker's code, pools and buffers are warm.
      const run = await download(port, token, accept, false)
      t.diagnostic(describeRun(name, run))
      assert.deepEqual({ count: run.ids.count, checksum: run.ids.checksum }, expected)
      const { rssBefore, rssPeak, heapBefore, heapLivePeak } = run.memory
      // Held whole, the export would add at least its own size (bytes, as one-byte strings or Buffers).
      assert.ok(
        rssPeak - rssBefore < run.bytes / 4,
        `RSS grew by ${((rssPeak - rssBefore) / MB).toFixed(1)} MB while ${(run.bytes / MB).toFixed(1)} MB streamed`,
      )
      assert.ok(
        heapLivePeak - heapBefore < 16 * MB,
        `the live heap grew by ${((heapLivePeak - heapBefore) / MB).toFixed(1)} MB mid-export`,
      )
    })
  }
})
