import { createHash } from 'node:crypto'
import { type NetworkManagementClient, restorePoller, type VirtualNetwork } from '@azure/arm-network'
import type { Logger } from 'pino'
import type { PrismaClient } from '../db/client.ts'
import type { BrokerMetrics, OperationOutcome } from '../metrics/broker-metrics.ts'
import { type Operation, Prisma, type VirtualNetwork as VnetRecord } from '../db/generated/client.ts'
import { type ArmClientFactory, type ArmResponseIds, withArmCorrelation } from '../ms-auth/arm-clients.ts'
import { SecretUnavailableError } from '../ms-auth/credential-store.ts'
import { ProblemError } from './errors.ts'
import type { AuditService } from './audit.ts'
import type { LedgerService } from './ledger.ts'
import type { DeploymentTarget, TenantRegistryService } from './tenant-registry.ts'
import type { IpamAllocationRequest } from './vnets.ts'

/** Why an operation stopped, for the caller: what ARM (or Entra, or Key Vault) said and what to do. */
export interface OperationFailure {
  code: string
  message: string
  source: 'arm' | 'entra' | 'key-vault' | 'broker'
  status: number | null
  armRequestId: string | null
  armCorrelationId: string | null
  advice: string
  transient: boolean
}

interface StoredRequest {
  subscriptionId: string
  resourceGroup: string
  name: string
  location?: string
  ipamAllocations: IpamAllocationRequest[]
  subnets?: { name: string; numberOfIpAddresses: string; poolId: string }[]
  tags?: Record<string, string>
  networkGroupIds: string[]
}

interface RunContext {
  operation: Operation & { virtualNetwork: VnetRecord }
  request: StoredRequest
  target: DeploymentTarget
  /** Client in the managed subscription, carrying the management tenant's auxiliary token. */
  vnets: NetworkManagementClient
  lastResponse: ArmResponseIds | undefined
  /** Audit records of ARM writes made so far, awaited at the end of each step. */
  audits: Promise<void>[]
}

export interface RunnerAttempt {
  retryCount: number
  retryLimit: number
}

export class BrokerError extends Error {
  override name = 'BrokerError'
  readonly code: string
  readonly advice: string

  constructor(code: string, message: string, advice: string) {
    super(message)
    this.code = code
    this.advice = advice
  }
}

const BROKER_TAG = 'ipam-broker-vnet'

/**
 * Carries out one operation against ARM, step by step, recording each step. Safe to run again from
 * the start after a crash: PUTs are idempotent by resource name, a saved poller is resumed rather than
 * the PUT repeated, and the ledger only moves forward.
 */
export class OperationRunner {
  readonly #prisma: PrismaClient
  readonly #registry: TenantRegistryService
  readonly #ledger: LedgerService
  readonly #arm: ArmClientFactory
  readonly #audit: AuditService
  readonly #log: Logger
  readonly #metrics: BrokerMetrics | undefined

  constructor(deps: {
    prisma: PrismaClient
    registry: TenantRegistryService
    ledger: LedgerService
    arm: ArmClientFactory
    audit: AuditService
    log: Logger
    /** Counts operations reaching their final state, and how long they took. */
    metrics?: BrokerMetrics
  }) {
    this.#prisma = deps.prisma
    this.#registry = deps.registry
    this.#ledger = deps.ledger
    this.#arm = deps.arm
    this.#audit = deps.audit
    this.#log = deps.log.child({ module: 'operation-runner' })
    this.#metrics = deps.metrics
  }

  async run(operationId: string, attempt: RunnerAttempt): Promise<void> {
    const found = await this.#prisma.operation.findUnique({
      where: { id: operationId },
      include: { virtualNetwork: true },
    })
    if (!found || found.state === 'succeeded' || found.state === 'failed') return
    const operation = await this.#prisma.operation.update({
      where: { id: operationId },
      data: { state: 'running', startedAt: found.startedAt ?? new Date(), attempts: { increment: 1 } },
      include: { virtualNetwork: true },
    })
    const log = this.#log.child({ operationId, kind: operation.kind, attempt: attempt.retryCount })
    log.info({ vnet: operation.virtualNetwork.resourceId }, 'operation running')
    const target = await this.#registry.targetForManagedTenantRecord(operation.virtualNetwork.managedTenantId)
    const context: RunContext = {
      operation,
      request: operation.request as unknown as StoredRequest,
      target,
      vnets: this.#arm.network(operation.virtualNetwork.subscriptionId, {
        app: target.app,
        tenantId: target.managedTenant.tenantId,
        auxiliaryTenantIds: [target.managementTenant.tenantId],
      }),
      lastResponse: undefined,
      audits: [],
    }
    try {
      await withArmCorrelation(
        operation.id,
        (ids) => {
          context.lastResponse = ids
          if (ids.method !== 'GET') context.audits.push(this.#auditArmWrite(operation, ids))
        },
        async () => {
          switch (operation.kind) {
            case 'deploy':
            case 'associate':
              return this.#deployOrAssociate(context)
            case 'release':
            case 'delete':
              return this.#remove(context)
          }
        },
      )
      log.info('operation succeeded')
    } catch (err) {
      const failure = describeFailure(err, context)
      if (failure.transient && attempt.retryCount < attempt.retryLimit) {
        log.warn({ failure }, 'operation hit a transient failure; it will be retried')
        await this.#prisma.operation.update({
          where: { id: operation.id },
          data: { error: { ...failure, retrying: true } },
        })
        throw err
      }
      log.warn({ failure }, 'operation failed')
      await this.#fail(context, failure)
    }
  }

  // ---- deploy and associate ----

  async #deployOrAssociate(context: RunContext): Promise<void> {
    const { operation, request } = context
    const vnet = await this.#step(context, operation.kind === 'deploy' ? 'deploy-vnet' : 'associate-vnet', async () => {
      if (operation.pollerState) return this.#resumePut(context, operation.pollerState)
      const body = operation.kind === 'deploy' ? deployBody(context) : await this.#associateBody(context)
      await this.#prisma.$transaction(async (tx) => {
        await this.#ledger.transitionRequested(tx, operation, 'deploying', {})
      })
      const poller = context.vnets.virtualNetworks.createOrUpdate(request.resourceGroup, request.name, body)
      await poller.submitted()
      await this.#savePoller(operation.id, await poller.serialize())
      return poller.pollUntilDone()
    })

    const allocations = request.ipamAllocations.map((asked) => {
      const given = (vnet.addressSpace?.ipamPoolPrefixAllocations ?? []).find(
        (a) => a.id?.toLowerCase() === asked.poolId.toLowerCase(),
      )
      if (!given?.allocatedAddressPrefixes?.length) {
        throw new BrokerError(
          'AllocationMissing',
          `ARM reports the VNet without an allocation from pool ${asked.poolId}.`,
          'Look at the VNet in the portal; submit the request again once it is consistent.',
        )
      }
      return {
        poolId: asked.poolId,
        numberOfIpAddresses: asked.numberOfIpAddresses,
        prefixes: given.allocatedAddressPrefixes,
      }
    })
    const ids = armIds(context.lastResponse)
    await this.#prisma.$transaction(async (tx) => {
      for (const allocation of allocations)
        await this.#ledger.allocated(tx, operation, allocation.poolId, allocation.prefixes, ids)
      await tx.virtualNetwork.update({
        where: { id: operation.virtualNetworkId },
        data: { state: 'active', ...(vnet.location && { location: vnet.location }) },
      })
      await tx.operation.update({ where: { id: operation.id }, data: { pollerState: null } })
    })

    for (const groupId of request.networkGroupIds) {
      await this.#step(context, `join-network-group ${groupId.split('/').at(-1)}`, () =>
        this.#joinGroup(context, groupId),
      )
    }

    await this.#succeed(context, {
      vnetResourceId: vnet.id ?? operation.virtualNetwork.resourceId,
      addressPrefixes: vnet.addressSpace?.addressPrefixes ?? [],
      allocations,
      subnets: (vnet.subnets ?? []).map((s) => ({
        name: s.name ?? '',
        addressPrefixes: s.addressPrefixes ?? (s.addressPrefix ? [s.addressPrefix] : []),
      })),
      networkGroupIds: request.networkGroupIds,
    })
  }

  async #associateBody(context: RunContext): Promise<VirtualNetwork> {
    const { request } = context
    let current: VirtualNetwork
    try {
      current = await context.vnets.virtualNetworks.get(request.resourceGroup, request.name)
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new BrokerError(
          'VirtualNetworkNotFound',
          `VNet ${context.operation.virtualNetwork.resourceId} does not exist.`,
          'Check the subscription, resource group and name; to create a VNet use POST /v1/vnets.',
        )
      }
      throw err
    }
    if (current.addressSpace?.ipamPoolPrefixAllocations?.length) {
      const pools = current.addressSpace.ipamPoolPrefixAllocations.map((a) => a.id).join(', ')
      const same = request.ipamAllocations.every((asked) =>
        current.addressSpace?.ipamPoolPrefixAllocations?.some(
          (a) => a.id?.toLowerCase() === asked.poolId.toLowerCase(),
        ),
      )
      if (!same) {
        throw new BrokerError(
          'AlreadyAssociated',
          `VNet ${current.id} already draws on pool(s) ${pools}.`,
          'Release it from those pools first, or leave it as it is.',
        )
      }
    }
    await this.#prisma.virtualNetwork.update({
      where: { id: context.operation.virtualNetworkId },
      data: { location: current.location ?? null },
    })
    // Everything but the address space is sent back as it is: tags, subnets, peerings, DNS servers.
    const { addressSpace: _replaced, provisioningState: _p, resourceGuid: _g, etag: _e, ...kept } = current
    return {
      ...kept,
      addressSpace: {
        ipamPoolPrefixAllocations: request.ipamAllocations.map((a) => ({
          numberOfIpAddresses: a.numberOfIpAddresses,
          id: a.poolId,
        })),
      },
    }
  }

  async #resumePut(context: RunContext, pollerState: string): Promise<VirtualNetwork> {
    const { request } = context
    try {
      return await restorePoller(
        context.vnets,
        pollerState,
        context.vnets.virtualNetworks.createOrUpdate,
      ).pollUntilDone()
    } catch (err) {
      // The status monitor is gone (ARM keeps them for a limited time): ARM's view of the VNet decides.
      if ((err as { statusCode?: number }).statusCode !== 404) throw err
      const vnet = await context.vnets.virtualNetworks.get(request.resourceGroup, request.name)
      if (vnet.provisioningState !== 'Succeeded')
        throw new BrokerError('DeploymentIncomplete', `VNet is ${vnet.provisioningState}.`, 'Retry later.')
      return vnet
    }
  }

  async #joinGroup(context: RunContext, groupId: string): Promise<{ staticMemberId: string }> {
    const { group, client } = this.#groupClient(context, groupId)
    const member = await client.staticMembers.createOrUpdate(
      group.resourceGroup,
      group.networkManager,
      group.name,
      memberName(context),
      {
        resourceId: context.operation.virtualNetwork.resourceId,
      },
    )
    return { staticMemberId: member.id ?? `${groupId}/staticMembers/${memberName(context)}` }
  }

  async #leaveGroup(context: RunContext, groupId: string): Promise<{ removed: string }> {
    const { group, client } = this.#groupClient(context, groupId)
    await client.staticMembers.delete(group.resourceGroup, group.networkManager, group.name, memberName(context))
    return { removed: `${groupId}/staticMembers/${memberName(context)}` }
  }

  #groupClient(context: RunContext, groupId: string) {
    const match =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkManagers\/([^/]+)\/networkGroups\/([^/]+)$/i.exec(
        groupId,
      )
    if (!match)
      throw new BrokerError('InvalidNetworkGroupId', `${groupId} is not a network group id.`, 'Fix the network group.')
    const [, subscriptionId, resourceGroup, networkManager, name] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
    ]
    // The group lives in the management tenant; the member VNet is linked from the managed tenant.
    const client = this.#arm.network(subscriptionId, {
      app: context.target.app,
      tenantId: context.target.managementTenant.tenantId,
      auxiliaryTenantIds: [context.target.managedTenant.tenantId],
    })
    return { group: { resourceGroup, networkManager, name }, client }
  }

  // ---- release and delete ----

  async #remove(context: RunContext): Promise<void> {
    const { operation } = context
    const record = operation.virtualNetwork
    const armName = { resourceGroup: record.resourceGroup, name: record.name }
    for (const groupId of record.networkGroupIds) {
      await this.#step(context, `leave-network-group ${groupId.split('/').at(-1)}`, () =>
        this.#leaveGroup(context, groupId),
      )
    }
    if (operation.kind === 'release') {
      await this.#step(context, 'release-vnet', async () => {
        if (operation.pollerState) {
          return summary(
            await restorePoller(
              context.vnets,
              operation.pollerState,
              context.vnets.virtualNetworks.createOrUpdate,
            ).pollUntilDone(),
          )
        }
        const current = await context.vnets.virtualNetworks.get(armName.resourceGroup, armName.name)
        if (!current.addressSpace?.ipamPoolPrefixAllocations?.length) return summary(current)
        const { provisioningState: _p, resourceGuid: _g, etag: _e, ...kept } = current
        // The seed tutorial's removal: the VNet keeps its addresses as static prefixes; the pool gets them back.
        const body: VirtualNetwork = {
          ...kept,
          addressSpace: { addressPrefixes: current.addressSpace.addressPrefixes ?? [] },
          subnets: (current.subnets ?? []).map(
            ({ ipamPoolPrefixAllocations: _a, provisioningState: _s, ...subnet }) => subnet,
          ),
        }
        const poller = context.vnets.virtualNetworks.createOrUpdate(armName.resourceGroup, armName.name, body)
        await poller.submitted()
        await this.#savePoller(operation.id, await poller.serialize())
        return summary(await poller.pollUntilDone())
      })
    } else {
      await this.#step(context, 'delete-vnet', async () => {
        const poller = operation.pollerState
          ? restorePoller(context.vnets, operation.pollerState, context.vnets.virtualNetworks.delete)
          : context.vnets.virtualNetworks.delete(armName.resourceGroup, armName.name)
        if (!operation.pollerState) {
          await poller.submitted()
          await this.#savePoller(operation.id, await poller.serialize())
        }
        await poller.pollUntilDone()
        return { deleted: record.resourceId }
      })
    }
    const ids = armIds(context.lastResponse)
    await this.#prisma.$transaction(async (tx) => {
      await this.#ledger.transitionActive(tx, record.id, operation, 'released', ids, { mode: operation.kind })
      await tx.virtualNetwork.update({
        where: { id: record.id },
        data: { state: operation.kind === 'release' ? 'released' : 'deleted' },
      })
    })
    await this.#succeed(context, { vnetResourceId: record.resourceId, mode: operation.kind })
  }

  // ---- bookkeeping ----

  /** Runs one named step, recording its start, end, ARM ids and outcome. A re-run reuses the step's row. */
  async #step<T>(context: RunContext, name: string, work: () => Promise<T>): Promise<T> {
    const operationId = context.operation.id
    const existing = await this.#prisma.operationStep.findFirst({ where: { operationId, name } })
    const step = existing
      ? await this.#prisma.operationStep.update({
          where: { id: existing.id },
          data: { state: 'running', finishedAt: null },
        })
      : await this.#prisma.operationStep.create({ data: { operationId, name, state: 'running' } })
    context.lastResponse = undefined
    try {
      const result = await work()
      await Promise.all(context.audits.splice(0))
      const ids = armIds(context.lastResponse)
      await this.#prisma.operationStep.update({
        where: { id: step.id },
        data: { state: 'succeeded', finishedAt: new Date(), ...ids, detail: stepDetail(result) },
      })
      return result
    } catch (err) {
      await Promise.all(context.audits.splice(0))
      const failure = describeFailure(err, context)
      await this.#prisma.operationStep.update({
        where: { id: step.id },
        data: {
          state: failure.transient ? 'running' : 'failed',
          finishedAt: failure.transient ? null : new Date(),
          armRequestId: failure.armRequestId,
          armCorrelationId: failure.armCorrelationId,
          detail: { error: { code: failure.code, message: failure.message } },
        },
      })
      throw err
    }
  }

  /** Every write the broker makes in someone's tenant is on the record, on behalf of the requester. */
  #auditArmWrite(operation: Operation, ids: ArmResponseIds): Promise<void> {
    const url = new URL(ids.url)
    return this.#audit.record({
      actor: { oid: operation.requesterOid, appId: operation.requesterAppId },
      action: 'arm.write',
      target: url.pathname,
      operationId: operation.id,
      detail: {
        method: ids.method,
        status: ids.status,
        apiVersion: url.searchParams.get('api-version'),
        armRequestId: ids.requestId ?? null,
        armCorrelationId: ids.correlationId ?? null,
      },
    })
  }

  async #savePoller(operationId: string, pollerState: string): Promise<void> {
    await this.#prisma.operation.update({ where: { id: operationId }, data: { pollerState } })
  }

  async #succeed(context: RunContext, result: Record<string, unknown>): Promise<void> {
    await this.#prisma.operation.update({
      where: { id: context.operation.id },
      data: {
        state: 'succeeded',
        finishedAt: new Date(),
        result: JSON.parse(JSON.stringify(result)) as object,
        error: Prisma.DbNull,
        pollerState: null,
      },
    })
    this.#finished(context.operation, 'succeeded')
  }

  async #fail(context: RunContext, failure: OperationFailure): Promise<void> {
    const { operation } = context
    const { transient: _t, ...error } = failure
    await this.#prisma.$transaction(async (tx) => {
      if (operation.kind === 'deploy' || operation.kind === 'associate') {
        await this.#ledger.transitionRequested(tx, operation, 'failed', armIds(context.lastResponse), {
          code: failure.code,
        })
        await tx.virtualNetwork.update({ where: { id: operation.virtualNetworkId }, data: { state: 'failed' } })
      } else {
        // The VNet keeps what it holds; it can be released or deleted again.
        await this.#ledger.removalFailed(tx, operation.virtualNetworkId, operation, {
          code: failure.code,
          mode: operation.kind,
        })
        await tx.virtualNetwork.update({ where: { id: operation.virtualNetworkId }, data: { state: 'active' } })
      }
      await tx.operation.update({
        where: { id: operation.id },
        data: { state: 'failed', finishedAt: new Date(), error: { ...error }, pollerState: null },
      })
    })
    this.#finished(operation, 'failed')
  }

  /** Counted once the final state is stored, from the operation's acceptance (createdAt). */
  #finished(operation: Operation, outcome: OperationOutcome): void {
    this.#metrics?.observeOperation(operation.kind, outcome, (Date.now() - operation.createdAt.getTime()) / 1000)
  }
}

function deployBody(context: RunContext): VirtualNetwork {
  const { request, operation } = context
  return {
    location: request.location,
    tags: { ...request.tags, [BROKER_TAG]: operation.virtualNetworkId },
    addressSpace: {
      ipamPoolPrefixAllocations: request.ipamAllocations.map((a) => ({
        numberOfIpAddresses: a.numberOfIpAddresses,
        id: a.poolId,
      })),
    },
    subnets: (request.subnets ?? []).map((subnet) => ({
      name: subnet.name,
      ipamPoolPrefixAllocations: [{ numberOfIpAddresses: subnet.numberOfIpAddresses, id: subnet.poolId }],
    })),
  }
}

function memberName(context: RunContext): string {
  // Deterministic, so a retried step finds the member it created.
  const hash = createHash('sha256').update(context.operation.virtualNetwork.resourceId.toLowerCase()).digest('hex')
  return `ipam-broker-${hash.slice(0, 24)}`
}

function summary(vnet: VirtualNetwork) {
  return {
    addressPrefixes: vnet.addressSpace?.addressPrefixes ?? [],
    provisioningState: vnet.provisioningState ?? null,
  }
}

function stepDetail(result: unknown): object | undefined {
  if (!result || typeof result !== 'object') return undefined
  const vnet = result as VirtualNetwork
  if ('addressSpace' in vnet) return summary(vnet)
  return JSON.parse(JSON.stringify(result)) as object
}

function armIds(ids: ArmResponseIds | undefined) {
  return { armRequestId: ids?.requestId ?? null, armCorrelationId: ids?.correlationId ?? null }
}

const ADVICE: Record<string, (context: RunContext) => string> = {
  LinkedAuthorizationFailed: ({ target }) =>
    `The app's service principal in the management tenant ${target.managementTenant.tenantId} may not use the pool: assign it the 'IPAM Pool User' role on the pool (app ${target.app.appId}), check the preflight (POST /v1/tenants/managed/{tenantId}/preflight), then submit a new request.`,
  AuthorizationFailed: ({ target }) =>
    `App ${target.app.appId} lacks the right named in the message on its scope: for VNets, 'Network Contributor' on the subscription or resource group in managed tenant ${target.managedTenant.tenantId}; for network groups, 'Network Contributor' on the group in management tenant ${target.managementTenant.tenantId}. Then submit a new request.`,
  SubscriptionNotInNetworkManagerScope: () =>
    'The subscription is not connected to the network manager: the management tenant adds a scope connection and the managed tenant a network manager connection.',
  IpamPoolExhausted: () => 'Ask for fewer addresses, or for a pool with free space.',
  NetcfgSubnetRangeOutsideVnet: () =>
    "The VNet's subnets would fall outside the space the pool allocates: remove or re-create those subnets (or associate a VNet without subnets); the VNet was left untouched.",
  InvalidResourceName: () => 'Use a VNet name of 2-64 letters, digits, underscores, periods or hyphens.',
  ResourceGroupNotFound: () => 'Create the resource group first, or name an existing one.',
  InvalidAuthenticationTokenTenant: () =>
    'The subscription is not in the managed tenant it is registered under: fix the tenant registry.',
}

/** Sorts an error into something the caller can act on, and whether trying again may help. */
export function describeFailure(
  err: unknown,
  context: Pick<RunContext, 'lastResponse' | 'target'> & Partial<RunContext>,
): OperationFailure {
  const last = armIds(context.lastResponse)
  if (err instanceof BrokerError || err instanceof ProblemError) {
    return {
      code: err.code,
      message: err.message,
      source: 'broker',
      status: null,
      ...last,
      advice: err instanceof BrokerError ? err.advice : 'Fix what the message says, then submit a new request.',
      transient: false,
    }
  }
  if (err instanceof SecretUnavailableError) {
    const transient = err.statusCode === undefined || err.statusCode === 429 || err.statusCode >= 500
    return {
      code: err.code ?? 'SecretUnavailable',
      message: err.message,
      source: 'key-vault',
      status: err.statusCode ?? null,
      ...last,
      advice: transient
        ? 'Key Vault did not answer; the broker retries.'
        : "Check that the secret exists and is enabled, and that the broker's identity may read it (Key Vault Secrets User).",
      transient,
    }
  }
  const e = err as {
    name?: string
    statusCode?: number
    code?: string
    message?: string
    errorResponse?: { error?: string }
  }
  // @azure/identity reports Entra's refusals (AADSTS codes) as AuthenticationError or AuthenticationRequiredError.
  const entraCode = /AADSTS\d+/.exec(e.message ?? '')?.[0]
  if (
    e.name === 'AuthenticationError' ||
    e.name === 'AuthenticationRequiredError' ||
    e.name === 'CredentialUnavailableError' ||
    entraCode
  ) {
    // An AADSTS code is Entra's answer about the app's configuration; without one, Entra was not reached.
    const transient = entraCode ? false : e.statusCode === undefined || e.statusCode >= 500 || e.statusCode === 429
    return {
      code: entraCode ?? e.errorResponse?.error ?? e.name ?? 'EntraError',
      message: (e.message ?? '').split('\n')[0] ?? '',
      source: 'entra',
      status: e.statusCode ?? null,
      ...last,
      advice: transient
        ? 'Entra ID did not answer; the broker retries.'
        : `Entra ID refused the app ${context.target.app.appId}: check it is multi-tenant, has a service principal in both tenants, and that its secret in Key Vault is current.`,
      transient,
    }
  }
  // A long-running operation that ended Failed reports ARM's code and message in its text.
  const lro = /The long-running operation has failed\. ([\w.]+)\. ([\s\S]*)$/.exec(e.message ?? '')
  const code = lro?.[1] ?? e.code ?? 'UnknownError'
  const status = e.statusCode ?? null
  const network =
    status === null &&
    !lro &&
    /ECONN|ETIMEDOUT|EAI_AGAIN|REQUEST_SEND_ERROR|socket|network/i.test(`${e.code} ${e.message}`)
  // 501 and 505 say the request will never work; other 5xx, 408 and 429 may pass on a later try.
  const transient =
    network ||
    status === 408 ||
    status === 429 ||
    (status !== null && status >= 500 && status !== 501 && status !== 505)
  const message = lro?.[2] ?? e.message ?? String(err)
  return {
    code,
    message,
    source: 'arm',
    status,
    ...last,
    advice:
      ADVICE[code]?.(context as RunContext) ??
      (transient
        ? 'ARM is busy or unreachable; the broker retries with backoff.'
        : 'Fix what the message says, then submit a new request.'),
    transient,
  }
}
