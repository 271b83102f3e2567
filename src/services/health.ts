import { setTimeout as sleep } from 'node:timers/promises'
import type { PrismaClient } from '../db/client.ts'

export interface Check {
  status: 'up' | 'down' | 'unknown'
  detail?: string
}

export interface Readiness {
  ready: boolean
  checks: { database: Check & { latencyMs?: number }; migrations: Check & { pending?: string[] } }
}

/** Readiness: the database answers, and every migration this build ships has been applied to it. */
export class HealthService {
  private readonly prisma: PrismaClient
  private readonly expectedMigrations: readonly string[]
  private readonly timeoutMs: number

  constructor(prisma: PrismaClient, expectedMigrations: readonly string[], timeoutMs = 2000) {
    this.prisma = prisma
    this.expectedMigrations = expectedMigrations
    this.timeoutMs = timeoutMs
  }

  async readiness(): Promise<Readiness> {
    const started = performance.now()
    let applied: Set<string> | undefined
    try {
      applied = await Promise.race([this.appliedMigrations(), this.timeout()])
    } catch (err) {
      const detail = err instanceof ReadinessTimeout ? err.message : 'database unreachable'
      return { ready: false, checks: { database: { status: 'down', detail }, migrations: { status: 'unknown' } } }
    }
    const database = { status: 'up' as const, latencyMs: Math.round(performance.now() - started) }
    if (!applied) {
      const detail = 'no _prisma_migrations table: run npm run db:migrate'
      return { ready: false, checks: { database, migrations: { status: 'down', detail } } }
    }
    const pending = this.expectedMigrations.filter((name) => !applied.has(name))
    const migrations: Readiness['checks']['migrations'] = pending.length
      ? { status: 'down', detail: `${pending.length} migration(s) not applied: run npm run db:migrate`, pending }
      : { status: 'up' }
    return { ready: pending.length === 0, checks: { database, migrations } }
  }

  /** Names of the finished migrations, or undefined when the database was never migrated. */
  private async appliedMigrations(): Promise<Set<string> | undefined> {
    const [table] = await this.prisma.$queryRaw<{ present: boolean }[]>`
      SELECT to_regclass('_prisma_migrations') IS NOT NULL AS present`
    if (!table?.present) return undefined
    const rows = await this.prisma.$queryRaw<{ migration_name: string }[]>`
      SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`
    return new Set(rows.map((row) => row.migration_name))
  }

  private async timeout(): Promise<never> {
    await sleep(this.timeoutMs, undefined, { ref: false })
    throw new ReadinessTimeout(`no answer within ${this.timeoutMs} ms`)
  }
}

class ReadinessTimeout extends Error {}
