import { Readable } from 'node:stream'
import pg from 'pg'
import Cursor from 'pg-cursor'
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

// Rows are fetched from a server-side cursor this many at a time and written as one chunk: large
// enough that round trips and per-row stream overhead do not dominate, small enough that memory
// stays flat whatever the export's size.
const BATCH_SIZE = 1_000

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
   * The query's rows as text lines ('\n' after each), after `header` if given. The next batch is
   * fetched only when the reader wants more, so a slow reader pauses the cursor. The connection returns
   * to the pool when the stream ends; one abandoned mid-way (a client that went away) is discarded.
   */
  async lines(query: LineQuery, header?: string): Promise<Readable> {
    const client = await this.#pool.connect()
    const cursor = client.query(new Cursor<[string]>(query.text, query.values, { rowMode: 'array' }))
    let pendingHeader = header !== undefined ? `${header}\n` : ''
    let finished = false
    return new Readable({
      read() {
        cursor.read(BATCH_SIZE).then(
          (rows) => {
            let chunk = pendingHeader
            pendingHeader = ''
            for (const row of rows) chunk += `${row[0]}\n`
            if (chunk) this.push(chunk)
            if (rows.length < BATCH_SIZE) {
              finished = true
              this.push(null)
            }
          },
          (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
        )
      },
      destroy(err, done) {
        cursor.close(() => {
          client.release(finished && !err ? undefined : true)
          done(err)
        })
      },
    })
  }

  async close(): Promise<void> {
    await this.#pool.end()
  }
}
