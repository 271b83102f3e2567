import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import QueryStream from 'pg-query-stream'
import type { Logger } from 'pino'

export interface RowStreamOptions {
  connectionString: string
  /** Exports running at once; each holds one connection for its whole run. */
  maxStreams: number
  log?: Logger
}

/** A query whose every row is one line of text, built by Postgres (see HistoryService's exports). */
export interface LineQuery {
  text: string
  values: unknown[]
}

// Rows are fetched from a server-side cursor this many at a time: large enough that the round trips
// do not dominate, small enough that memory stays flat whatever the export's size.
const BATCH_SIZE = 2_000

/**
 * Streams the result of a query through a server-side cursor, so an export of millions of rows runs
 * in constant memory. Prisma has no cursor, hence a small pg pool of its own beside Prisma's.
 */
export class RowStreamer {
  readonly #pool: pg.Pool

  constructor({ connectionString, maxStreams, log }: RowStreamOptions) {
    this.#pool = new pg.Pool({ connectionString, max: maxStreams, connectionTimeoutMillis: 5_000 })
    this.#pool.on('error', (err) => log?.error({ err }, 'postgres export pool error'))
  }

  /**
   * The query's rows as text lines ('\n' after each), after `header` if given. Backpressure reaches the
   * cursor: a slow reader pauses the fetching. The connection returns to the pool when the stream ends,
   * fails or is destroyed (a client that goes away mid-export).
   */
  async lines(query: LineQuery, header?: string): Promise<Readable> {
    const client = await this.#pool.connect()
    const rows = client.query(new QueryStream(query.text, query.values, { batchSize: BATCH_SIZE, rowMode: 'array' }))
    let first = header !== undefined
    const out = new Transform({
      writableObjectMode: true,
      writableHighWaterMark: BATCH_SIZE,
      transform(row: [string], _encoding, done) {
        if (first) {
          first = false
          done(null, `${header}\n${row[0]}\n`)
        } else done(null, `${row[0]}\n`)
      },
      flush(done) {
        done(null, first ? `${header}\n` : undefined)
      },
    })
    pipeline(rows, out).then(
      () => client.release(),
      // A failed or abandoned cursor leaves the connection in an unknown state: discard it.
      (err: unknown) => client.release(err instanceof Error ? err : true),
    )
    return out
  }

  async close(): Promise<void> {
    await this.#pool.end()
  }
}
