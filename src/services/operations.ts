import { setTimeout as sleep } from 'node:timers/promises'
import type { PrismaClient } from '../db/client.ts'
import type { Operation, OperationStep, VirtualNetwork } from '../db/generated/client.ts'
import type { Caller } from './audit.ts'
import { notFound } from './tenant-registry.ts'
import { seesEverything } from './grants.ts'

export interface OperationView {
  id: string
  kind: string
  state: string
  virtualNetworkId: string
  vnetResourceId: string
  requester: { oid: string; appId: string | null }
  idempotencyKey: string | null
  request: unknown
  attempts: number
  steps: StepView[]
  result: unknown
  error: unknown
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
}

export interface StepView {
  name: string
  state: string
  armRequestId: string | null
  armCorrelationId: string | null
  detail: unknown
  startedAt: string
  finishedAt: string | null
}

const TERMINAL = new Set(['succeeded', 'failed'])
const iso = (date: Date | null) => date?.toISOString() ?? null

export function operationView(
  operation: Operation & { steps: OperationStep[]; virtualNetwork: VirtualNetwork },
): OperationView {
  return {
    id: operation.id,
    kind: operation.kind,
    state: operation.state,
    virtualNetworkId: operation.virtualNetworkId,
    vnetResourceId: operation.virtualNetwork.resourceId,
    requester: { oid: operation.requesterOid, appId: operation.requesterAppId },
    idempotencyKey: operation.idempotencyKey,
    request: operation.request,
    attempts: operation.attempts,
    steps: [...operation.steps]
      .sort((a, b) => Number(a.id - b.id))
      .map((step) => ({
        name: step.name,
        state: step.state,
        armRequestId: step.armRequestId,
        armCorrelationId: step.armCorrelationId,
        detail: step.detail ?? null,
        startedAt: step.startedAt.toISOString(),
        finishedAt: iso(step.finishedAt),
      })),
    result: operation.result ?? null,
    error: operation.error ?? null,
    createdAt: operation.createdAt.toISOString(),
    startedAt: iso(operation.startedAt),
    finishedAt: iso(operation.finishedAt),
  }
}

/** Reading operations, and waiting (bounded) for one to finish. */
export class OperationService {
  readonly #prisma: PrismaClient

  constructor(prisma: PrismaClient) {
    this.#prisma = prisma
  }

  /** An operation, if the caller may see it (Readers and Admins: all; Requesters: their own). */
  async get(caller: Caller, id: string): Promise<OperationView> {
    const operation = await this.#prisma.operation.findUnique({
      where: { id },
      include: { steps: true, virtualNetwork: true },
    })
    if (!operation || (!seesEverything(caller) && operation.requesterOid !== caller.oid)) {
      throw notFound('operation', `No operation ${id}.`)
    }
    return operationView(operation)
  }

  /** The operation once it has finished, or as it stands after `seconds`. */
  async waitFor(caller: Caller, id: string, seconds: number, signal?: AbortSignal): Promise<OperationView> {
    const deadline = Date.now() + seconds * 1000
    let view = await this.get(caller, id)
    while (!TERMINAL.has(view.state) && Date.now() < deadline && !signal?.aborted) {
      await sleep(Math.min(200, Math.max(0, deadline - Date.now())))
      view = await this.get(caller, id)
    }
    return view
  }

  static finished(view: OperationView): boolean {
    return TERMINAL.has(view.state)
  }
}
