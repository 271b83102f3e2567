import type { PrismaClient } from '../db/client.ts'
import type { AppIdentity } from '../ms-auth/token-broker.ts'
import type { AuditService, Caller } from './audit.ts'
import { ProblemError } from './errors.ts'

export interface ManagementTenantInput {
  displayName: string
  networkManagerId: string
  poolIds: string[]
}

export interface ManagedTenantInput {
  displayName: string
  managementTenantId: string
  appId: string
  clientSecret: { vaultUrl: string; secretName: string }
  subscriptionIds: string[]
}

export interface ManagementTenantView extends ManagementTenantInput {
  tenantId: string
  createdAt: string
  updatedAt: string
}

export interface ManagedTenantView extends ManagedTenantInput {
  tenantId: string
  createdAt: string
  updatedAt: string
}

/** Everything a worker needs to act in a managed subscription with pools of its management tenant. */
export interface DeploymentTarget {
  managedTenant: { id: string; tenantId: string }
  managementTenant: { tenantId: string; networkManagerId: string; poolIds: string[] }
  app: AppIdentity
}

const lower = (value: string) => value.toLowerCase()
const trimSlash = (value: string) => value.replace(/\/+$/, '')

export function notFound(what: string, detail: string): ProblemError {
  return new ProblemError(404, `${what}-not-found`, `${what.replace(/-/g, ' ')} not found`, detail)
}

/** Which tenants the broker serves and with which credentials (by reference): the registry admins manage. */
export class TenantRegistryService {
  readonly #prisma: PrismaClient
  readonly #audit: AuditService

  constructor(prisma: PrismaClient, audit: AuditService) {
    this.#prisma = prisma
    this.#audit = audit
  }

  async putManagementTenant(
    actor: Caller,
    tenantId: string,
    input: ManagementTenantInput,
  ): Promise<ManagementTenantView> {
    const manager = lower(input.networkManagerId)
    const strayPool = input.poolIds.find((id) => !lower(id).startsWith(`${manager}/ipampools/`))
    if (strayPool) {
      throw new ProblemError(
        422,
        'pool-outside-network-manager',
        'Pool not in the network manager',
        `Pool ${strayPool} is not an IPAM pool of network manager ${input.networkManagerId}.`,
      )
    }
    const data = {
      displayName: input.displayName,
      networkManagerId: input.networkManagerId,
      poolIds: [...new Set(input.poolIds)],
    }
    const row = await this.#prisma.$transaction(async (tx) => {
      const saved = await tx.managementTenant.upsert({
        where: { tenantId: lower(tenantId) },
        create: { tenantId: lower(tenantId), ...data },
        update: data,
      })
      await this.#audit.record(
        { actor, action: 'tenant.management.put', target: saved.tenantId, requestId: actor.requestId, detail: data },
        tx,
      )
      return saved
    })
    return managementView(row)
  }

  async listManagementTenants(): Promise<ManagementTenantView[]> {
    const rows = await this.#prisma.managementTenant.findMany({ orderBy: { createdAt: 'asc' } })
    return rows.map(managementView)
  }

  async getManagementTenant(tenantId: string): Promise<ManagementTenantView> {
    const row = await this.#prisma.managementTenant.findUnique({ where: { tenantId: lower(tenantId) } })
    if (!row) throw notFound('management-tenant', `No management tenant ${tenantId} is registered.`)
    return managementView(row)
  }

  async putManagedTenant(actor: Caller, tenantId: string, input: ManagedTenantInput): Promise<ManagedTenantView> {
    const tenant = lower(tenantId)
    if (tenant === lower(input.managementTenantId)) {
      throw new ProblemError(
        422,
        'same-tenant',
        'A tenant cannot manage itself',
        'A managed tenant must be another tenant than its management tenant.',
      )
    }
    const subscriptionIds = [...new Set(input.subscriptionIds.map(lower))]
    return this.#prisma.$transaction(async (tx) => {
      const management = await tx.managementTenant.findUnique({ where: { tenantId: lower(input.managementTenantId) } })
      if (!management) {
        throw new ProblemError(
          422,
          'management-tenant-not-registered',
          'Management tenant not registered',
          `Register management tenant ${input.managementTenantId} first (PUT /v1/tenants/management/${input.managementTenantId}).`,
        )
      }
      const taken = await tx.managedSubscription.findFirst({
        where: { subscriptionId: { in: subscriptionIds }, managedTenant: { tenantId: { not: tenant } } },
        include: { managedTenant: true },
      })
      if (taken) {
        throw new ProblemError(
          409,
          'subscription-registered-elsewhere',
          'Subscription belongs to another tenant',
          `Subscription ${taken.subscriptionId} is registered under managed tenant ${taken.managedTenant.tenantId}.`,
        )
      }
      const reference = {
        appId: lower(input.appId),
        vaultUrl: trimSlash(input.clientSecret.vaultUrl),
        secretName: input.clientSecret.secretName,
      }
      const credential = await tx.credentialReference.upsert({
        where: { appId_vaultUrl_secretName: reference },
        create: reference,
        update: {},
      })
      const data = {
        displayName: input.displayName,
        managementTenantId: management.id,
        credentialReferenceId: credential.id,
      }
      const managed = await tx.managedTenant.upsert({
        where: { tenantId: tenant },
        create: { tenantId: tenant, ...data },
        update: data,
      })
      await tx.managedSubscription.deleteMany({
        where: { managedTenantId: managed.id, subscriptionId: { notIn: subscriptionIds } },
      })
      await tx.managedSubscription.createMany({
        data: subscriptionIds.map((subscriptionId) => ({ subscriptionId, managedTenantId: managed.id })),
        skipDuplicates: true,
      })
      await this.#audit.record(
        {
          actor,
          action: 'tenant.managed.put',
          target: tenant,
          requestId: actor.requestId,
          detail: { ...input, managementTenantId: lower(input.managementTenantId), subscriptionIds },
        },
        tx,
      )
      return this.#managedView(tx, tenant)
    })
  }

  async listManagedTenants(): Promise<ManagedTenantView[]> {
    const rows = await this.#prisma.managedTenant.findMany({ orderBy: { createdAt: 'asc' }, include: MANAGED_INCLUDE })
    return rows.map(managedView)
  }

  async getManagedTenant(tenantId: string): Promise<ManagedTenantView> {
    return this.#managedView(this.#prisma, lower(tenantId))
  }

  /** Where a request for this subscription goes and as whom; 422 if the subscription is not registered. */
  async targetFor(subscriptionId: string): Promise<DeploymentTarget> {
    const row = await this.#prisma.managedSubscription.findUnique({
      where: { subscriptionId: lower(subscriptionId) },
      include: { managedTenant: { include: { managementTenant: true, credentialReference: true } } },
    })
    if (!row) {
      throw new ProblemError(
        422,
        'subscription-not-registered',
        'Subscription not registered',
        `Subscription ${subscriptionId} is not registered with any managed tenant; an admin adds it with PUT /v1/tenants/managed/{tenantId}.`,
      )
    }
    return targetOf(row.managedTenant)
  }

  async targetForTenant(tenantId: string): Promise<DeploymentTarget> {
    const row = await this.#prisma.managedTenant.findUnique({
      where: { tenantId: lower(tenantId) },
      include: { managementTenant: true, credentialReference: true },
    })
    if (!row) throw notFound('managed-tenant', `No managed tenant ${tenantId} is registered.`)
    return targetOf(row)
  }

  async targetForManagedTenantRecord(id: string): Promise<DeploymentTarget> {
    const row = await this.#prisma.managedTenant.findUniqueOrThrow({
      where: { id },
      include: { managementTenant: true, credentialReference: true },
    })
    return targetOf(row)
  }

  async #managedView(client: Pick<PrismaClient, 'managedTenant'>, tenantId: string): Promise<ManagedTenantView> {
    const row = await client.managedTenant.findUnique({ where: { tenantId }, include: MANAGED_INCLUDE })
    if (!row) throw notFound('managed-tenant', `No managed tenant ${tenantId} is registered.`)
    return managedView(row)
  }
}

const MANAGED_INCLUDE = { managementTenant: true, credentialReference: true, subscriptions: true } as const

function targetOf(row: {
  id: string
  tenantId: string
  managementTenant: { tenantId: string; networkManagerId: string; poolIds: string[] }
  credentialReference: { appId: string; vaultUrl: string; secretName: string }
}): DeploymentTarget {
  return {
    managedTenant: { id: row.id, tenantId: row.tenantId },
    managementTenant: {
      tenantId: row.managementTenant.tenantId,
      networkManagerId: row.managementTenant.networkManagerId,
      poolIds: row.managementTenant.poolIds,
    },
    app: {
      appId: row.credentialReference.appId,
      secret: { vaultUrl: row.credentialReference.vaultUrl, secretName: row.credentialReference.secretName },
    },
  }
}

function managementView(row: {
  tenantId: string
  displayName: string
  networkManagerId: string
  poolIds: string[]
  createdAt: Date
  updatedAt: Date
}): ManagementTenantView {
  return {
    tenantId: row.tenantId,
    displayName: row.displayName,
    networkManagerId: row.networkManagerId,
    poolIds: row.poolIds,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

function managedView(row: {
  tenantId: string
  displayName: string
  managementTenant: { tenantId: string }
  credentialReference: { appId: string; vaultUrl: string; secretName: string }
  subscriptions: { subscriptionId: string }[]
  createdAt: Date
  updatedAt: Date
}): ManagedTenantView {
  return {
    tenantId: row.tenantId,
    displayName: row.displayName,
    managementTenantId: row.managementTenant.tenantId,
    appId: row.credentialReference.appId,
    clientSecret: { vaultUrl: row.credentialReference.vaultUrl, secretName: row.credentialReference.secretName },
    subscriptionIds: row.subscriptions.map((s) => s.subscriptionId).sort(),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}
