import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from './generated/client.ts'

export { PrismaClient }

export interface PrismaOptions {
  connectionString: string
  poolMax: number
}

/** Prisma 7 runs queries through the Wasm query compiler and node-postgres; no native engine involved. */
export function createPrismaClient({ connectionString, poolMax }: PrismaOptions): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString, max: poolMax }) })
}
