import { PrismaPg } from '@prisma/adapter-pg'
import type { Logger } from 'pino'
import { type Prisma, PrismaClient } from './generated/client.ts'

export { PrismaClient }
export type TransactionClient = Prisma.TransactionClient

export interface PrismaOptions {
  connectionString: string
  poolMax: number
  log?: Logger
}

/** Prisma 7 runs queries through the Wasm query compiler and node-postgres; no native engine involved. */
export function createPrismaClient({ connectionString, poolMax, log }: PrismaOptions): PrismaClient {
  const adapter = new PrismaPg(
    // A silent database must not pile up waiting connections or queries.
    {
      connectionString,
      max: poolMax,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      query_timeout: 30_000,
    },
    {
      onPoolError: (err) => log?.error({ err }, 'postgres pool error'),
      onConnectionError: (err) => log?.error({ err }, 'postgres connection error'),
    },
  )
  return new PrismaClient({ adapter })
}

// node-postgres's pool, when every connection stays busy for connectionTimeoutMillis.
const POOL_TIMEOUT = 'timeout exceeded when trying to connect'

/**
 * Whether an error (or what it wraps: Prisma's adapter and the export pool pass it on) is a pool that
 * had no free connection in time: a load problem the caller may retry, not a fault.
 */
export function isPoolExhausted(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.message.includes(POOL_TIMEOUT)) return true
  }
  return false
}
