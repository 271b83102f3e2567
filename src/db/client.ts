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
