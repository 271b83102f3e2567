import type { Logger } from 'pino'
import type { PrismaClient, TransactionClient } from '../db/client.ts'
import type { Prisma } from '../db/generated/client.ts'
import type { Principal } from '../ms-auth/caller-identity.ts'

/** Who acts, as the audit trail and the ledger name them, and the request that carried it. */
export interface Caller extends Principal {
  requestId?: string
}

export interface AuditEntry {
  actor: { oid: string; appId?: string | null | undefined } | undefined
  action: string
  decision?: 'allowed' | 'denied'
  reason?: string
  grantId?: string | null
  target?: string
  requestId?: string | undefined
  operationId?: string | null
  detail?: Record<string, unknown>
}

/** The append-only audit trail: decisions, admin changes, ARM writes; each also a log line. */
export class AuditService {
  readonly #prisma: PrismaClient
  readonly #log: Logger

  constructor(prisma: PrismaClient, log: Logger) {
    this.#prisma = prisma
    this.#log = log.child({ module: 'audit' })
  }

  async record(entry: AuditEntry, tx?: TransactionClient): Promise<void> {
    await (tx ?? this.#prisma).auditEvent.create({
      data: {
        actorOid: entry.actor?.oid ?? null,
        actorAppId: entry.actor?.appId ?? null,
        action: entry.action,
        decision: entry.decision ?? null,
        reason: entry.reason ?? null,
        grantId: entry.grantId ?? null,
        target: entry.target ?? null,
        requestId: entry.requestId ?? null,
        operationId: entry.operationId ?? null,
        ...(entry.detail && { detail: JSON.parse(JSON.stringify(entry.detail)) as Prisma.InputJsonObject }),
      },
    })
    this.#log.info(
      {
        audit: {
          action: entry.action,
          decision: entry.decision,
          actor: entry.actor,
          target: entry.target,
          reason: entry.reason,
          grantId: entry.grantId,
          operationId: entry.operationId,
          requestId: entry.requestId,
        },
      },
      `audit: ${entry.action}${entry.decision ? ` ${entry.decision}` : ''}`,
    )
  }

  async list(filter: { action?: string; actorOid?: string; operationId?: string; limit: number }) {
    const rows = await this.#prisma.auditEvent.findMany({
      where: {
        ...(filter.action && { action: filter.action }),
        ...(filter.actorOid && { actorOid: filter.actorOid }),
        ...(filter.operationId && { operationId: filter.operationId }),
      },
      orderBy: { id: 'desc' },
      take: filter.limit,
    })
    return rows.map((row) => ({
      id: row.id.toString(),
      at: row.at.toISOString(),
      actorOid: row.actorOid,
      actorAppId: row.actorAppId,
      action: row.action,
      decision: row.decision,
      reason: row.reason,
      grantId: row.grantId,
      target: row.target,
      requestId: row.requestId,
      operationId: row.operationId,
      detail: row.detail ?? null,
    }))
  }
}
