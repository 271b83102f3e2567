import type { TransactionClient } from '../db/client.ts'
import type { Prisma } from '../db/generated/client.ts'
import type { AllocationEventType, AllocationState } from '../db/generated/enums.ts'

// The ledger: every change of an allocation's state is written together with its event, in the
// caller's transaction, so the current state and the append-only history never disagree.

export interface ArmIds {
  armRequestId?: string | null
  armCorrelationId?: string | null
}

export interface NewAllocation {
  poolId: string
  numberOfIpAddresses: string
}

interface Transition {
  type: AllocationEventType
  state: AllocationState
}

const TRANSITIONS = {
  deploying: { type: 'deploying', state: 'deploying' },
  failed: { type: 'failed', state: 'failed' },
  releasing: { type: 'releasing', state: 'releasing' },
  released: { type: 'released', state: 'released' },
} satisfies Record<string, Transition>

export class LedgerService {
  /** One allocation per pool of a new request, each with its `requested` event. */
  async requested(
    tx: TransactionClient,
    operation: { id: string; requesterOid: string },
    vnet: {
      id: string
      managedTenantId: string
      subscriptionId: string
      resourceGroup: string
      name: string
      resourceId: string
      team: string | null
      ticket: string | null
    },
    allocations: readonly NewAllocation[],
  ): Promise<void> {
    for (const allocation of allocations) {
      const created = await tx.allocation.create({
        data: {
          operationId: operation.id,
          virtualNetworkId: vnet.id,
          managedTenantId: vnet.managedTenantId,
          subscriptionId: vnet.subscriptionId,
          resourceGroup: vnet.resourceGroup,
          vnetName: vnet.name,
          vnetResourceId: vnet.resourceId,
          poolId: allocation.poolId,
          requestedSize: allocation.numberOfIpAddresses,
          team: vnet.team,
          ticket: vnet.ticket,
          requesterOid: operation.requesterOid,
        },
      })
      await tx.allocationEvent.create({
        data: {
          allocationId: created.id,
          operationId: operation.id,
          type: 'requested',
          actor: operation.requesterOid,
          detail: { poolId: allocation.poolId, numberOfIpAddresses: allocation.numberOfIpAddresses },
        },
      })
    }
  }

  /** The operation's own allocations move on: deploying, or failed (nothing held). */
  async transitionRequested(
    tx: TransactionClient,
    operation: { id: string; requesterOid: string },
    to: 'deploying' | 'failed',
    ids: ArmIds = {},
    detail?: Record<string, unknown>,
  ): Promise<void> {
    const from: AllocationState[] = to === 'deploying' ? ['requested'] : ['requested', 'deploying']
    await this.#transition(
      tx,
      { operationId: operation.id, state: { in: from } },
      operation,
      TRANSITIONS[to],
      ids,
      detail,
    )
  }

  /** ARM allocated these prefixes to the operation's allocation of `poolId`. */
  async allocated(
    tx: TransactionClient,
    operation: { id: string; requesterOid: string },
    poolId: string,
    prefixes: readonly string[],
    ids: ArmIds,
  ): Promise<void> {
    const allocations = await tx.allocation.findMany({
      where: { operationId: operation.id, poolId, state: { in: ['requested', 'deploying'] } },
    })
    for (const allocation of allocations) {
      await tx.allocation.update({ where: { id: allocation.id }, data: { state: 'active', allocatedAt: new Date() } })
      await tx.allocationPrefix.createMany({
        data: prefixes.map((prefix) => ({ allocationId: allocation.id, prefix })),
      })
      await tx.allocationEvent.create({
        data: {
          allocationId: allocation.id,
          operationId: operation.id,
          type: 'allocated',
          actor: operation.requesterOid,
          prefixes: [...prefixes],
          ...ids,
        },
      })
    }
  }

  /** A VNet's active allocations are being given back (release or delete), then are given back. */
  async transitionActive(
    tx: TransactionClient,
    virtualNetworkId: string,
    operation: { id: string; requesterOid: string },
    to: 'releasing' | 'released',
    ids: ArmIds = {},
    detail?: Record<string, unknown>,
  ): Promise<void> {
    const from: AllocationState[] = to === 'releasing' ? ['active'] : ['active', 'releasing']
    await this.#transition(tx, { virtualNetworkId, state: { in: from } }, operation, TRANSITIONS[to], ids, detail)
  }

  /** A release or delete did not go through: the VNet keeps its allocations (back to active), and the ledger says why. */
  async removalFailed(
    tx: TransactionClient,
    virtualNetworkId: string,
    operation: { id: string; requesterOid: string },
    detail: Record<string, unknown>,
  ): Promise<void> {
    await this.#transition(
      tx,
      { virtualNetworkId, state: { in: ['releasing'] } },
      operation,
      { type: 'failed', state: 'active' },
      {},
      detail,
    )
  }

  async #transition(
    tx: TransactionClient,
    where: { operationId?: string; virtualNetworkId?: string; state: { in: AllocationState[] } },
    operation: { id: string; requesterOid: string },
    { type, state }: Transition,
    ids: ArmIds,
    detail: Record<string, unknown> | undefined,
  ): Promise<void> {
    const allocations = await tx.allocation.findMany({ where, include: { prefixes: true } })
    for (const allocation of allocations) {
      await tx.allocation.update({
        where: { id: allocation.id },
        data: { state, ...(state === 'released' && { releasedAt: new Date() }) },
      })
      await tx.allocationEvent.create({
        data: {
          allocationId: allocation.id,
          operationId: operation.id,
          type,
          actor: operation.requesterOid,
          prefixes: allocation.prefixes.map((p) => p.prefix),
          ...ids,
          ...(detail && { detail: detail as Prisma.InputJsonObject }),
        },
      })
    }
  }
}
