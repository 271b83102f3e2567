import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'

/**
 * At most `limit` operations at once per managed subscription, across every broker process: a slot
 * is a Postgres session advisory lock (subscription, slot number) held on its own connection for the
 * operation's duration, so a process that dies gives its slots back with its connections. The job
 * queue's group limit keeps contention low; this makes the bound exact.
 */
export class SubscriptionSlots {
  readonly #pool: pg.Pool
  readonly #limit: number

  constructor({
    connectionString,
    limit,
    connections,
  }: {
    connectionString: string
    limit: number
    connections: number
  }) {
    this.#pool = new pg.Pool({ connectionString, max: connections, application_name: 'ipam-broker-slots' })
    this.#pool.on('error', () => undefined)
    this.#limit = limit
  }

  /** Waits for a free slot; the returned function gives it back. */
  async acquire(subscriptionId: string, signal?: AbortSignal): Promise<() => Promise<void>> {
    const key = `ipam-broker:subscription:${subscriptionId.toLowerCase()}`
    for (;;) {
      signal?.throwIfAborted()
      const client = await this.#pool.connect()
      try {
        for (let slot = 0; slot < this.#limit; slot++) {
          const { rows } = await client.query<{ got: boolean }>(
            'SELECT pg_try_advisory_lock(hashtext($1), $2) AS got',
            [key, slot],
          )
          if (rows[0]?.got) {
            return async () => {
              try {
                await client.query('SELECT pg_advisory_unlock(hashtext($1), $2)', [key, slot])
              } finally {
                client.release()
              }
            }
          }
        }
      } catch (err) {
        client.release(err as Error)
        throw err
      }
      client.release()
      await sleep(100 + Math.random() * 200, undefined, { signal })
    }
  }

  async close(): Promise<void> {
    await this.#pool.end()
  }
}
