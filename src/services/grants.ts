import type { PrismaClient } from '../db/client.ts'
import type { AccessGrant, GrantPrincipalType } from '../db/generated/client.ts'
import type { AuditService, Caller } from './audit.ts'
import { ProblemError } from './errors.ts'
import { notFound } from './tenant-registry.ts'

export interface GrantInput {
  principalType: GrantPrincipalType
  principalId: string
  subscriptionIds: string[]
  poolIds: string[]
  maxAddresses: string
  description?: string
}

export interface GrantView extends GrantInput {
  id: string
  description: string | undefined
  createdBy: string
  createdAt: string
  revokedAt: string | null
  revokedBy: string | null
}

/** What a request asks for, as the grant check sees it. */
export interface RequestScope {
  subscriptionId: string
  allocations: { poolId: string; numberOfIpAddresses: string }[]
}

const lower = (value: string) => value.toLowerCase()

function view(grant: AccessGrant): GrantView {
  return {
    id: grant.id,
    principalType: grant.principalType,
    principalId: grant.principalId,
    subscriptionIds: grant.subscriptionIds,
    poolIds: grant.poolIds,
    maxAddresses: grant.maxAddresses.toFixed(0),
    description: grant.description ?? undefined,
    createdBy: grant.createdBy,
    createdAt: grant.createdAt.toISOString(),
    revokedAt: grant.revokedAt?.toISOString() ?? null,
    revokedBy: grant.revokedBy,
  }
}

export function isPrivileged(caller: Caller): boolean {
  return caller.roles.includes('Admin')
}

/** Readers (SREs) and Admins see every record; a Requester sees what it asked for. */
export function seesEverything(caller: Caller): boolean {
  return isPrivileged(caller) || caller.roles.includes('Reader')
}

/**
 * Grants say which caller (object, app or group) may request into which managed subscriptions, from
 * which pools, up to how many addresses. Nothing is allowed without one (Admins excepted); every
 * decision goes to the audit trail.
 */
export class GrantService {
  readonly #prisma: PrismaClient
  readonly #audit: AuditService

  constructor(prisma: PrismaClient, audit: AuditService) {
    this.#prisma = prisma
    this.#audit = audit
  }

  async create(admin: Caller, input: GrantInput): Promise<GrantView> {
    const grant = await this.#prisma.$transaction(async (tx) => {
      const created = await tx.accessGrant.create({
        data: {
          principalType: input.principalType,
          principalId: lower(input.principalId),
          subscriptionIds: [...new Set(input.subscriptionIds.map(lower))],
          poolIds: [...new Set(input.poolIds)],
          maxAddresses: input.maxAddresses,
          description: input.description ?? null,
          createdBy: admin.oid,
        },
      })
      await this.#audit.record(
        {
          actor: admin,
          action: 'grant.create',
          target: created.id,
          requestId: admin.requestId,
          grantId: created.id,
          detail: { ...input },
        },
        tx,
      )
      return created
    })
    return view(grant)
  }

  async list(filter: { principalId?: string; includeRevoked: boolean }): Promise<GrantView[]> {
    const rows = await this.#prisma.accessGrant.findMany({
      where: {
        ...(filter.principalId && { principalId: lower(filter.principalId) }),
        ...(!filter.includeRevoked && { revokedAt: null }),
      },
      orderBy: { createdAt: 'asc' },
    })
    return rows.map(view)
  }

  async revoke(admin: Caller, id: string): Promise<GrantView> {
    const grant = await this.#prisma.$transaction(async (tx) => {
      const found = await tx.accessGrant.findUnique({ where: { id } })
      if (!found) throw notFound('grant', `No grant ${id}.`)
      if (found.revokedAt) return found
      const revoked = await tx.accessGrant.update({
        where: { id },
        data: { revokedAt: new Date(), revokedBy: admin.oid },
      })
      await this.#audit.record(
        { actor: admin, action: 'grant.revoke', target: id, grantId: id, requestId: admin.requestId },
        tx,
      )
      return revoked
    })
    return view(grant)
  }

  /**
   * Allows the request if, for every pool it draws on, one live grant of the caller covers the
   * subscription, that pool and the size; otherwise 403 naming the grant that is missing.
   * The decision is recorded either way. Returns the grant ids used.
   */
  async authorize(caller: Caller, action: string, target: string, scope: RequestScope): Promise<string[]> {
    if (isPrivileged(caller)) {
      await this.#audit.record({
        actor: caller,
        action,
        decision: 'allowed',
        reason: 'Admin role',
        target,
        requestId: caller.requestId,
      })
      return []
    }
    const grants = await this.#grantsOf(caller)
    const used: string[] = []
    for (const allocation of scope.allocations) {
      const size = BigInt(allocation.numberOfIpAddresses)
      const grant = grants.find(
        (g) =>
          g.subscriptionIds.includes(lower(scope.subscriptionId)) &&
          g.poolIds.some((pool) => lower(pool) === lower(allocation.poolId)) &&
          BigInt(g.maxAddresses.toFixed(0)) >= size,
      )
      if (!grant) {
        const missing = `a grant for subscription ${scope.subscriptionId}, pool ${allocation.poolId}, at least ${allocation.numberOfIpAddresses} addresses`
        const reason = `missing ${missing}`
        await this.#audit.record({
          actor: caller,
          action,
          decision: 'denied',
          reason,
          target,
          requestId: caller.requestId,
          detail: { ...scope, grantsHeld: grants.map((g) => g.id) },
        })
        throw new ProblemError(
          403,
          'grant-required',
          'No grant covers this request',
          `Caller ${caller.oid}${caller.appId ? ` (app ${caller.appId})` : ''} has no grant for this request: ask an Admin for ${missing} (POST /v1/grants).`,
          {
            missingGrant: {
              subscriptionId: scope.subscriptionId,
              poolId: allocation.poolId,
              numberOfIpAddresses: allocation.numberOfIpAddresses,
            },
          },
        )
      }
      used.push(grant.id)
    }
    const grantIds = [...new Set(used)]
    await this.#audit.record({
      actor: caller,
      action,
      decision: 'allowed',
      reason: `grant ${grantIds.join(', ')}`,
      grantId: grantIds[0] ?? null,
      target,
      requestId: caller.requestId,
      detail: { ...scope, grantIds },
    })
    return grantIds
  }

  /** Whether the caller may act on what exists in a subscription (release, delete): Admin, or any live grant on it. */
  async coversSubscription(caller: Caller, subscriptionId: string): Promise<boolean> {
    if (isPrivileged(caller)) return true
    return (await this.#grantsOf(caller)).some((g) => g.subscriptionIds.includes(lower(subscriptionId)))
  }

  async #grantsOf(caller: Caller) {
    return this.#prisma.accessGrant.findMany({
      where: {
        revokedAt: null,
        OR: [
          { principalType: 'object', principalId: lower(caller.oid) },
          ...(caller.appId ? [{ principalType: 'app' as const, principalId: lower(caller.appId) }] : []),
          ...(caller.groups.length ? [{ principalType: 'group' as const, principalId: { in: caller.groups } }] : []),
        ],
      },
      orderBy: { createdAt: 'asc' },
    })
  }
}
