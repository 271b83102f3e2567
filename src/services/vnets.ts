import { createHash } from 'node:crypto'
import { Prisma } from '../db/generated/client.ts'
import type { PrismaClient, TransactionClient } from '../db/client.ts'
import type { ArmClientFactory } from '../ms-auth/arm-clients.ts'
import type { AuditService, Caller } from './audit.ts'
import { ProblemError } from './errors.ts'
import { type GrantService, seesEverything } from './grants.ts'
import type { LedgerService } from './ledger.ts'
import { operationView, type OperationView } from './operations.ts'
import { notFound, type DeploymentTarget, type TenantRegistryService } from './tenant-registry.ts'

export interface IpamAllocationRequest {
  poolId: string
  numberOfIpAddresses: string
}

export interface SubnetRequest {
  name: string
  numberOfIpAddresses: string
  poolId?: string
}

/** A new VNet, as the caller asked for it (pool ids and group names not yet resolved). */
export interface DeployRequest {
  subscriptionId: string
  resourceGroup: string
  name: string
  location: string
  ipamAllocations: IpamAllocationRequest[]
  subnets?: SubnetRequest[]
  tags?: Record<string, string>
  networkGroups?: string[]
  team?: string
  ticket?: string
}

/** An existing VNet to draw its address space from pools instead of static prefixes. */
export interface AssociateRequest {
  subscriptionId: string
  resourceGroup: string
  name: string
  ipamAllocations: IpamAllocationRequest[]
  networkGroups?: string[]
  team?: string
  ticket?: string
}

export type RemovalMode = 'release' | 'delete'

/** Anything that can put an operation on the work queue inside a transaction. */
export interface OperationQueue {
  enqueue(tx: TransactionClient, operationId: string, subscriptionId: string): Promise<void>
}

export interface Submitted {
  operation: OperationView
  /** False when an earlier request with the same Idempotency-Key is being answered again. */
  created: boolean
}

/** The transaction found that a request with the same Idempotency-Key won the race. */
const RACED = 'raced'

const OPEN_STATES = ['deploying', 'active', 'releasing', 'deleting'] as const

export function vnetResourceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Network/virtualNetworks/${name}`
}

/** JSON with sorted keys, so equal requests hash equally whatever order their fields came in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** VNet requests: policy checks, idempotency, and the operation + ledger records a worker will act on. */
export class VnetService {
  readonly #prisma: PrismaClient
  readonly #registry: TenantRegistryService
  readonly #ledger: LedgerService
  readonly #queue: OperationQueue
  readonly #arm: ArmClientFactory
  readonly #grants: GrantService
  readonly #audit: AuditService

  constructor(deps: {
    prisma: PrismaClient
    registry: TenantRegistryService
    ledger: LedgerService
    queue: OperationQueue
    arm: ArmClientFactory
    grants: GrantService
    audit: AuditService
  }) {
    this.#prisma = deps.prisma
    this.#registry = deps.registry
    this.#ledger = deps.ledger
    this.#queue = deps.queue
    this.#arm = deps.arm
    this.#grants = deps.grants
    this.#audit = deps.audit
  }

  async deploy(caller: Caller, input: DeployRequest, idempotencyKey?: string): Promise<Submitted> {
    const target = await this.#registry.targetFor(input.subscriptionId)
    const ipamAllocations = resolvePools(target, input.ipamAllocations)
    const subnets = (input.subnets ?? []).map((subnet) => ({
      name: subnet.name,
      numberOfIpAddresses: subnet.numberOfIpAddresses,
      poolId: subnet.poolId ? matchVnetPool(ipamAllocations, subnet) : ipamAllocations[0]!.poolId,
    }))
    const duplicateSubnet = subnets.find(
      (s, i) => subnets.findIndex((t) => t.name.toLowerCase() === s.name.toLowerCase()) !== i,
    )
    if (duplicateSubnet) throw invalid('duplicate-subnet', `Subnet name ${duplicateSubnet.name} is used twice.`)
    const request = {
      subscriptionId: input.subscriptionId.toLowerCase(),
      resourceGroup: input.resourceGroup,
      name: input.name,
      location: input.location.toLowerCase(),
      ipamAllocations,
      subnets,
      tags: input.tags ?? {},
      networkGroupIds: resolveGroups(target, input.networkGroups ?? []),
      team: input.team,
      ticket: input.ticket,
    }
    return this.#submit(caller, 'deploy', target, request, idempotencyKey)
  }

  async associate(caller: Caller, input: AssociateRequest, idempotencyKey?: string): Promise<Submitted> {
    const target = await this.#registry.targetFor(input.subscriptionId)
    const request = {
      subscriptionId: input.subscriptionId.toLowerCase(),
      resourceGroup: input.resourceGroup,
      name: input.name,
      location: undefined,
      ipamAllocations: resolvePools(target, input.ipamAllocations),
      networkGroupIds: resolveGroups(target, input.networkGroups ?? []),
      team: input.team,
      ticket: input.ticket,
    }
    return this.#submit(caller, 'associate', target, request, idempotencyKey)
  }

  async #submit(
    caller: Caller,
    kind: 'deploy' | 'associate',
    target: DeploymentTarget,
    request: {
      subscriptionId: string
      resourceGroup: string
      name: string
      location: string | undefined
      ipamAllocations: IpamAllocationRequest[]
      networkGroupIds: string[]
      team: string | undefined
      ticket: string | undefined
    },
    idempotencyKey: string | undefined,
  ): Promise<Submitted> {
    const resourceId = vnetResourceId(request.subscriptionId, request.resourceGroup, request.name)
    await this.#grants.authorize(caller, `vnet.${kind}`, resourceId, {
      subscriptionId: request.subscriptionId,
      allocations: request.ipamAllocations,
    })
    const requestHash = createHash('sha256')
      .update(canonicalJson({ kind, ...request }))
      .digest('hex')
    const replay = await this.#replay(caller, idempotencyKey, requestHash)
    if (replay) return replay
    try {
      const operationId = await this.#prisma.$transaction(async (tx) => {
        await lockVnet(tx, resourceId)
        // A request with the same key may have committed while this one waited for the lock.
        const raced = idempotencyKey
          ? await tx.operation.findUnique({
              where: { requesterOid_idempotencyKey: { requesterOid: caller.oid, idempotencyKey } },
            })
          : null
        if (raced) return RACED
        const open = await tx.virtualNetwork.findFirst({
          where: { resourceId: { equals: resourceId, mode: 'insensitive' }, state: { in: [...OPEN_STATES] } },
        })
        if (open) {
          throw new ProblemError(
            409,
            'vnet-already-managed',
            'VNet already managed',
            `The broker already manages ${resourceId} (record ${open.id}, ${open.state}); release or delete it first.`,
            { virtualNetworkId: open.id },
          )
        }
        const vnet = await tx.virtualNetwork.create({
          data: {
            managedTenantId: target.managedTenant.id,
            subscriptionId: request.subscriptionId,
            resourceGroup: request.resourceGroup,
            name: request.name,
            resourceId,
            location: request.location ?? null,
            state: 'deploying',
            team: request.team ?? null,
            ticket: request.ticket ?? null,
            requesterOid: caller.oid,
            networkGroupIds: request.networkGroupIds,
          },
        })
        const operation = await tx.operation.create({
          data: {
            kind,
            virtualNetworkId: vnet.id,
            requesterOid: caller.oid,
            requesterAppId: caller.appId ?? null,
            idempotencyKey: idempotencyKey ?? null,
            requestHash,
            request: JSON.parse(JSON.stringify(request)) as Prisma.InputJsonObject,
          },
        })
        await this.#ledger.requested(tx, operation, vnet, request.ipamAllocations)
        await this.#queue.enqueue(tx, operation.id, request.subscriptionId)
        return operation.id
      })
      if (operationId === RACED) return (await this.#replay(caller, idempotencyKey, requestHash))!
      return { operation: await this.#view(operationId), created: true }
    } catch (err) {
      // Two requests with the same key raced: the loser answers with the winner's operation.
      if (idempotencyKey && isUniqueViolation(err)) {
        const again = await this.#replay(caller, idempotencyKey, requestHash)
        if (again) return again
      }
      throw err
    }
  }

  async remove(caller: Caller, id: string, mode: RemovalMode, idempotencyKey?: string): Promise<Submitted> {
    const record = await this.#prisma.virtualNetwork.findUnique({ where: { id } })
    if (!record || !this.#visible(caller, record)) throw notFound('vnet', `No VNet record ${id}.`)
    const own = record.requesterOid === caller.oid
    const allowed = own || (await this.#grants.coversSubscription(caller, record.subscriptionId))
    await this.#audit.record({
      actor: caller,
      action: `vnet.${mode}`,
      decision: allowed ? 'allowed' : 'denied',
      reason: own ? 'requested it' : allowed ? 'grant on the subscription' : 'no grant on the subscription',
      target: record.resourceId,
      requestId: caller.requestId,
    })
    if (!allowed) {
      throw new ProblemError(
        403,
        'grant-required',
        'No grant covers this request',
        `Caller ${caller.oid} did not request ${record.resourceId} and holds no grant on subscription ${record.subscriptionId}.`,
        { missingGrant: { subscriptionId: record.subscriptionId } },
      )
    }
    const requestHash = createHash('sha256')
      .update(canonicalJson({ kind: mode, virtualNetworkId: id }))
      .digest('hex')
    const replay = await this.#replay(caller, idempotencyKey, requestHash)
    if (replay) return replay
    try {
      const operationId = await this.#prisma.$transaction(async (tx) => {
        const found = await tx.virtualNetwork.findUnique({ where: { id } })
        if (!found) throw notFound('vnet', `No VNet record ${id}.`)
        await lockVnet(tx, found.resourceId)
        const vnet = await tx.virtualNetwork.findUniqueOrThrow({ where: { id } })
        if (vnet.state !== 'active') {
          throw new ProblemError(
            409,
            'vnet-not-active',
            'VNet not active',
            `VNet ${vnet.resourceId} is ${vnet.state}; only an active VNet can be released or deleted.`,
            { state: vnet.state },
          )
        }
        await tx.virtualNetwork.update({
          where: { id },
          data: { state: mode === 'release' ? 'releasing' : 'deleting' },
        })
        const operation = await tx.operation.create({
          data: {
            kind: mode,
            virtualNetworkId: id,
            requesterOid: caller.oid,
            requesterAppId: caller.appId ?? null,
            idempotencyKey: idempotencyKey ?? null,
            requestHash,
            request: { virtualNetworkId: id, mode },
          },
        })
        await this.#ledger.transitionActive(tx, id, operation, 'releasing', {}, { mode })
        await this.#queue.enqueue(tx, operation.id, vnet.subscriptionId)
        return operation.id
      })
      return { operation: await this.#view(operationId), created: true }
    } catch (err) {
      if (idempotencyKey && isUniqueViolation(err)) {
        const again = await this.#replay(caller, idempotencyKey, requestHash)
        if (again) return again
      }
      throw err
    }
  }

  async list(caller: Caller, filter: { subscriptionId?: string; state?: string; limit: number }) {
    const rows = await this.#prisma.virtualNetwork.findMany({
      where: {
        ...(!seesEverything(caller) && { requesterOid: caller.oid }),
        ...(filter.subscriptionId && { subscriptionId: filter.subscriptionId.toLowerCase() }),
        ...(filter.state && { state: filter.state as never }),
      },
      include: VNET_INCLUDE,
      orderBy: { createdAt: 'desc' },
      take: filter.limit,
    })
    return rows.map(vnetView)
  }

  /** The broker's record, beside what ARM says about the VNet now. */
  async get(caller: Caller, id: string) {
    const row = await this.#prisma.virtualNetwork.findUnique({ where: { id }, include: VNET_INCLUDE })
    if (!row || !this.#visible(caller, row)) throw notFound('vnet', `No VNet record ${id}.`)
    return { ...vnetView(row), live: await this.#live(row) }
  }

  async #live(row: { managedTenantId: string; subscriptionId: string; resourceGroup: string; name: string }) {
    const target = await this.#registry.targetForManagedTenantRecord(row.managedTenantId)
    const client = this.#arm.network(row.subscriptionId, { app: target.app, tenantId: target.managedTenant.tenantId })
    try {
      const vnet = await client.virtualNetworks.get(row.resourceGroup, row.name)
      return {
        exists: true,
        provisioningState: vnet.provisioningState ?? null,
        addressPrefixes: vnet.addressSpace?.addressPrefixes ?? [],
        ipamPoolPrefixAllocations: (vnet.addressSpace?.ipamPoolPrefixAllocations ?? []).map((a) => ({
          poolId: a.id ?? null,
          numberOfIpAddresses: a.numberOfIpAddresses ?? null,
          allocatedAddressPrefixes: a.allocatedAddressPrefixes ?? [],
        })),
        tags: vnet.tags ?? {},
        subnets: (vnet.subnets ?? []).map((s) => ({
          name: s.name ?? '',
          addressPrefixes: s.addressPrefixes ?? (s.addressPrefix ? [s.addressPrefix] : []),
        })),
      }
    } catch (err) {
      const { statusCode, code, message } = err as { statusCode?: number; code?: string; message?: string }
      if (statusCode === 404) return { exists: false }
      return {
        exists: null,
        error: { status: statusCode ?? null, code: code ?? null, message: message ?? String(err) },
      }
    }
  }

  /** Readers and Admins see every record; a Requester sees what it asked for. */
  #visible(caller: Caller, record: { requesterOid: string }): boolean {
    return seesEverything(caller) || record.requesterOid === caller.oid
  }

  async #replay(
    caller: Caller,
    idempotencyKey: string | undefined,
    requestHash: string,
  ): Promise<Submitted | undefined> {
    if (!idempotencyKey) return undefined
    const existing = await this.#prisma.operation.findUnique({
      where: { requesterOid_idempotencyKey: { requesterOid: caller.oid, idempotencyKey } },
      include: { steps: true, virtualNetwork: true },
    })
    if (!existing) return undefined
    if (existing.requestHash !== requestHash) {
      throw new ProblemError(
        422,
        'idempotency-key-reused',
        'Idempotency-Key reused with a different request',
        `Idempotency-Key '${idempotencyKey}' was used for operation ${existing.id} with a different request; use a new key for a new request.`,
        { operationId: existing.id },
      )
    }
    return { operation: operationView(existing), created: false }
  }

  async #view(operationId: string): Promise<OperationView> {
    const operation = await this.#prisma.operation.findUniqueOrThrow({
      where: { id: operationId },
      include: { steps: true, virtualNetwork: true },
    })
    return operationView(operation)
  }
}

const VNET_INCLUDE = {
  managedTenant: true,
  allocations: { include: { prefixes: true }, orderBy: { createdAt: 'asc' } },
  operations: { orderBy: { createdAt: 'asc' } },
} as const satisfies Prisma.VirtualNetworkInclude

type VnetRow = Prisma.VirtualNetworkGetPayload<{ include: typeof VNET_INCLUDE }>

function vnetView(row: VnetRow) {
  return {
    id: row.id,
    managedTenantId: row.managedTenant.tenantId,
    subscriptionId: row.subscriptionId,
    resourceGroup: row.resourceGroup,
    name: row.name,
    resourceId: row.resourceId,
    location: row.location,
    state: row.state,
    team: row.team,
    ticket: row.ticket,
    requesterOid: row.requesterOid,
    networkGroupIds: row.networkGroupIds,
    allocations: row.allocations.map((a) => ({
      id: a.id,
      poolId: a.poolId,
      numberOfIpAddresses: a.requestedSize.toFixed(0),
      state: a.state,
      prefixes: a.prefixes.map((p) => p.prefix),
      allocatedAt: a.allocatedAt?.toISOString() ?? null,
      releasedAt: a.releasedAt?.toISOString() ?? null,
    })),
    operations: row.operations.map((o) => ({
      id: o.id,
      kind: o.kind,
      state: o.state,
      createdAt: o.createdAt.toISOString(),
    })),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

export type VnetView = ReturnType<typeof vnetView>

async function lockVnet(tx: TransactionClient, resourceId: string): Promise<void> {
  // Serialises requests for one VNet across every broker process, until the transaction ends.
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${resourceId.toLowerCase()}, 0))`
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002'
}

function invalid(code: string, detail: string): ProblemError {
  return new ProblemError(422, code, 'Request cannot be carried out', detail)
}

function resolvePools(target: DeploymentTarget, requested: readonly IpamAllocationRequest[]): IpamAllocationRequest[] {
  const offered = new Map(target.managementTenant.poolIds.map((id) => [id.toLowerCase(), id]))
  const seen = new Set<string>()
  return requested.map(({ poolId, numberOfIpAddresses }) => {
    const canonical = offered.get(poolId.toLowerCase())
    if (!canonical) {
      throw invalid(
        'pool-not-offered',
        `Pool ${poolId} is not offered to this subscription by management tenant ${target.managementTenant.tenantId}; offered: ${target.managementTenant.poolIds.join(', ') || 'none'}.`,
      )
    }
    if (seen.has(canonical.toLowerCase())) throw invalid('duplicate-pool', `Pool ${poolId} is named twice.`)
    seen.add(canonical.toLowerCase())
    return { poolId: canonical, numberOfIpAddresses: BigInt(numberOfIpAddresses).toString() }
  })
}

function matchVnetPool(allocations: readonly IpamAllocationRequest[], subnet: SubnetRequest): string {
  const match = allocations.find((a) => a.poolId.toLowerCase() === subnet.poolId?.toLowerCase())
  if (!match) {
    throw invalid(
      'subnet-pool-not-in-vnet',
      `Subnet ${subnet.name} draws on pool ${subnet.poolId}, which the VNet does not.`,
    )
  }
  return match.poolId
}

function resolveGroups(target: DeploymentTarget, groups: readonly string[]): string[] {
  const manager = target.managementTenant.networkManagerId
  const ids = groups.map((group) => {
    const id = group.startsWith('/') ? group : `${manager}/networkGroups/${group}`
    if (
      !id.toLowerCase().startsWith(`${manager.toLowerCase()}/networkgroups/`) ||
      id.split('/').length !== manager.split('/').length + 2
    ) {
      throw invalid(
        'network-group-outside-network-manager',
        `Network group ${group} is not a group of network manager ${manager}.`,
      )
    }
    return id
  })
  return [...new Map(ids.map((id) => [id.toLowerCase(), id])).values()]
}
