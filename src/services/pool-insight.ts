import type { PoolAssociation, PoolUsage } from '@azure/arm-network'
import type { PrismaClient } from '../db/client.ts'
import type { BrokerMetrics } from '../metrics/broker-metrics.ts'
import type { ArmClientFactory } from '../ms-auth/arm-clients.ts'
import { ProblemError } from './errors.ts'
import { canonicalPrefix, prefixSize, prefixWithin } from './network-address.ts'
import { describeFailure } from './operation-runner.ts'
import { type DeploymentTarget, notFound, type TenantRegistryService } from './tenant-registry.ts'

// Does the ledger agree with Azure? AVNM is the allocator of record: the pool's usage and its
// associated resources are read live from ARM, with the management tenant's identity, and set
// beside what the ledger says the broker holds in that pool.

export interface PoolView {
  id: string
  name: string
  /** The management tenant (Entra tenant id) that owns the pool. */
  managementTenantId: string
  networkManagerId: string
}

export interface ArmHolding {
  resourceId: string
  prefixes: string[]
  kind: 'virtualNetwork' | 'staticCidr' | 'other'
}

export interface LedgerHolding {
  allocationId: string
  virtualNetworkId: string
  vnetResourceId: string
  state: string
  prefixes: string[]
}

export interface PoolUsageReport {
  pool: PoolView & { addressPrefixes: string[] }
  readAt: string
  arm: {
    totalNumberOfIPAddresses: string | null
    numberOfAllocatedIPAddresses: string | null
    numberOfReservedIPAddresses: string | null
    numberOfAvailableIPAddresses: string | null
    allocatedAddressPrefixes: string[]
    reservedAddressPrefixes: string[]
    availableAddressPrefixes: string[]
    associatedResources: ArmHolding[]
  }
  ledger: {
    /** Allocations holding prefixes (active), and those in flight (deploying, releasing), which drift ignores. */
    active: number
    inFlight: number
    prefixes: string[]
    holdings: LedgerHolding[]
  }
  drift: {
    inSync: boolean
    /** Prefixes ARM shows associated with the pool that the ledger does not hold. */
    armOnly: ArmHolding[]
    /** Active ledger allocations whose VNet and prefixes ARM no longer shows. */
    ledgerOnly: (LedgerHolding & { missingPrefixes: string[] })[]
  }
}

const POOL_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkManagers\/([^/]+)\/ipamPools\/([^/]+)$/i

const IN_FLIGHT = ['deploying', 'releasing'] as const

const kindOf = (resourceId: string): ArmHolding['kind'] =>
  /\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+$/i.test(resourceId)
    ? 'virtualNetwork'
    : /\/ipamPools\/[^/]+\/staticCidrs\/[^/]+$/i.test(resourceId)
      ? 'staticCidr'
      : 'other'

export interface PoolInsightOptions {
  prisma: PrismaClient
  registry: TenantRegistryService
  arm: ArmClientFactory
  metrics?: BrokerMetrics
}

export class PoolInsightService {
  readonly #prisma: PrismaClient
  readonly #registry: TenantRegistryService
  readonly #arm: ArmClientFactory
  readonly #metrics: BrokerMetrics | undefined

  constructor({ prisma, registry, arm, metrics }: PoolInsightOptions) {
    this.#prisma = prisma
    this.#registry = registry
    this.#arm = arm
    this.#metrics = metrics
  }

  /** The pools the registered management tenants offer. */
  async list(): Promise<PoolView[]> {
    return (await this.#registry.listManagementTenants()).flatMap((tenant) =>
      tenant.poolIds.map((id) => ({
        id,
        name: id.slice(id.lastIndexOf('/') + 1),
        managementTenantId: tenant.tenantId,
        networkManagerId: tenant.networkManagerId,
      })),
    )
  }

  /** ARM's usage of the pool beside the ledger's, and where they disagree. */
  async usage(poolRef: string): Promise<PoolUsageReport> {
    const pool = await this.#resolve(poolRef)
    const [, subscriptionId, resourceGroup, networkManager, poolName] = POOL_ID.exec(pool.id) as unknown as [
      string,
      string,
      string,
      string,
      string,
    ]
    const { found, usage, associations } = await this.#readArm(pool, subscriptionId, async (client) => {
      const found = await client.ipamPools.get(resourceGroup, networkManager, poolName)
      const usage = await client.ipamPools.getPoolUsage(resourceGroup, networkManager, poolName)
      const associations: PoolAssociation[] = []
      for await (const association of client.ipamPools.listAssociatedResources(
        resourceGroup,
        networkManager,
        poolName,
      )) {
        associations.push(association)
      }
      return { found, usage, associations }
    })
    const readAt = new Date().toISOString()
    this.#metrics?.observePoolUsage(pool.id, {
      total: usage.totalNumberOfIPAddresses ?? '',
      allocated: usage.numberOfAllocatedIPAddresses ?? '',
      ...(usage.numberOfAvailableIPAddresses !== undefined && { available: usage.numberOfAvailableIPAddresses }),
    })

    const rows = await this.#prisma.allocation.findMany({
      where: { poolId: pool.id, state: { in: ['active', ...IN_FLIGHT] } },
      include: { prefixes: true },
      orderBy: { createdAt: 'asc' },
    })
    const holdings: LedgerHolding[] = rows.map((row) => ({
      allocationId: row.id,
      virtualNetworkId: row.virtualNetworkId,
      vnetResourceId: row.vnetResourceId,
      state: row.state,
      prefixes: row.prefixes.map((p) => canonicalPrefix(p.prefix)),
    }))
    const armHoldings: ArmHolding[] = associations.map((a) => ({
      resourceId: a.resourceId,
      prefixes: (a.addressPrefixes ?? []).map(canonicalPrefix),
      kind: kindOf(a.resourceId),
    }))
    return {
      pool: { ...pool, addressPrefixes: found.properties.addressPrefixes ?? [] },
      readAt,
      arm: armView(usage, armHoldings),
      ledger: {
        active: holdings.filter((h) => h.state === 'active').length,
        inFlight: holdings.filter((h) => h.state !== 'active').length,
        prefixes: holdings.flatMap((h) => h.prefixes),
        holdings,
      },
      drift: drift(armHoldings, holdings),
    }
  }

  async #resolve(poolRef: string): Promise<PoolView> {
    const pools = await this.list()
    const wanted = poolRef.toLowerCase()
    const byId = pools.find((p) => p.id.toLowerCase() === wanted)
    if (byId) return byId
    const byName = pools.filter((p) => p.name.toLowerCase() === wanted)
    if (byName.length === 1) return byName[0]!
    if (byName.length > 1) {
      throw new ProblemError(
        409,
        'pool-name-ambiguous',
        'Pool name is ambiguous',
        `Several registered pools are named ${poolRef}: ${byName.map((p) => p.id).join(', ')}; give the pool's ARM id (URL-encoded).`,
      )
    }
    throw notFound('pool', `No registered management tenant offers a pool ${poolRef}; GET /v1/pools lists them.`)
  }

  /**
   * Reads with an app that has a service principal in the management tenant: the deployer app of a
   * managed tenant registered under it (its IPAM Pool User role lets it read usage and associations).
   * Several apps are tried in turn when the first may not read the pool.
   */
  async #readArm<T>(
    pool: PoolView,
    subscriptionId: string,
    read: (client: ReturnType<ArmClientFactory['network']>) => Promise<T>,
  ): Promise<T> {
    const targets = new Map<string, DeploymentTarget>()
    for (const tenant of await this.#registry.listManagedTenants()) {
      if (tenant.managementTenantId.toLowerCase() !== pool.managementTenantId.toLowerCase()) continue
      const target = await this.#registry.targetForTenant(tenant.tenantId)
      const { appId, secret } = target.app
      targets.set(`${appId}|${secret.vaultUrl}|${secret.secretName}`.toLowerCase(), target)
    }
    if (targets.size === 0) {
      throw new ProblemError(
        409,
        'no-identity-for-pool',
        'No identity can read this pool',
        `No managed tenant is registered under management tenant ${pool.managementTenantId}, so the broker has no app with a service principal there to read pool ${pool.name}.`,
      )
    }
    let failure: ReturnType<typeof describeFailure> | undefined
    for (const target of targets.values()) {
      try {
        return await read(this.#arm.network(subscriptionId, { app: target.app, tenantId: pool.managementTenantId }))
      } catch (err) {
        failure = describeFailure(err, { target, lastResponse: undefined })
        if (failure.code !== 'AuthorizationFailed') break
      }
    }
    throw new ProblemError(
      502,
      'pool-unreadable',
      'ARM did not give the pool usage',
      `Reading pool ${pool.name} in management tenant ${pool.managementTenantId} failed: ${failure!.message}`,
      { armCode: failure!.code, armRequestId: failure!.armRequestId ?? null, advice: failure!.advice },
    )
  }
}

function armView(usage: PoolUsage, associatedResources: ArmHolding[]): PoolUsageReport['arm'] {
  return {
    totalNumberOfIPAddresses: usage.totalNumberOfIPAddresses ?? null,
    numberOfAllocatedIPAddresses: usage.numberOfAllocatedIPAddresses ?? null,
    numberOfReservedIPAddresses: usage.numberOfReservedIPAddresses ?? null,
    numberOfAvailableIPAddresses: usage.numberOfAvailableIPAddresses ?? null,
    allocatedAddressPrefixes: usage.allocatedAddressPrefixes ?? [],
    reservedAddressPrefixes: usage.reservedAddressPrefixes ?? [],
    availableAddressPrefixes: usage.availableAddressPrefixes ?? [],
    associatedResources,
  }
}

/**
 * Compared per resource by address coverage, not by spelling: ARM may report one VNet's adjacent
 * prefixes merged. Operations in flight are left out of the ledger side (ARM may not show them yet,
 * or still does), but their prefixes do not count as unknown on the ARM side.
 */
function drift(arm: ArmHolding[], ledger: LedgerHolding[]): PoolUsageReport['drift'] {
  const byResource = <T>(items: T[], id: (item: T) => string, prefixes: (item: T) => string[]) => {
    const map = new Map<string, string[]>()
    for (const item of items)
      map.set(id(item).toLowerCase(), [...(map.get(id(item).toLowerCase()) ?? []), ...prefixes(item)])
    return map
  }
  const armPrefixes = byResource(
    arm,
    (h) => h.resourceId,
    (h) => h.prefixes,
  )
  const ledgerPrefixes = byResource(
    ledger,
    (h) => h.vnetResourceId,
    (h) => h.prefixes,
  )
  // An ARM prefix is known when the ledger's prefixes of that resource inside it add up to all of it.
  const known = (resourceId: string, prefix: string) =>
    (ledgerPrefixes.get(resourceId.toLowerCase()) ?? [])
      .filter((p) => prefixWithin(p, prefix))
      .reduce((sum, p) => sum + prefixSize(p), 0n) >= prefixSize(prefix)
  const present = (resourceId: string, prefix: string) =>
    (armPrefixes.get(resourceId.toLowerCase()) ?? []).some((p) => prefixWithin(prefix, p))
  const armOnly = arm
    .map((h) => ({ ...h, prefixes: h.prefixes.filter((p) => !known(h.resourceId, p)) }))
    .filter((h) => h.prefixes.length > 0)
  const ledgerOnly = ledger
    .filter((h) => h.state === 'active')
    .map((h) => ({ ...h, missingPrefixes: h.prefixes.filter((p) => !present(h.vnetResourceId, p)) }))
    .filter((h) => h.missingPrefixes.length > 0)
  return { inSync: armOnly.length === 0 && ledgerOnly.length === 0, armOnly, ledgerOnly }
}
