import type { Logger } from 'pino'
import type { ArmClientFactory } from '../ms-auth/arm-clients.ts'
import type { AzureEndpoints } from '../ms-auth/azure-cloud.ts'
import type { CredentialStore } from '../ms-auth/credential-store.ts'
import type { TokenBroker } from '../ms-auth/token-broker.ts'
import { describeFailure } from './operation-runner.ts'
import { ProblemError } from './errors.ts'
import type { TenantRegistryService } from './tenant-registry.ts'

export interface PreflightCheck {
  name: string
  status: 'pass' | 'fail' | 'skipped'
  detail: string
  /** The Azure error code when a check failed on one. */
  code?: string
}

export interface PreflightReport {
  tenantId: string
  subscriptionId: string
  resourceGroup: string
  ok: boolean
  checks: PreflightCheck[]
}

const ASSOCIATE_ACTION = 'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action'
const VNET_WRITE_ACTION = 'Microsoft.Network/virtualNetworks/write'

/** Whether ARM's permission entries allow an action (actions minus notActions, '*' wildcards, any case). */
export function allows(permissions: { actions?: string[]; notActions?: string[] }[], action: string): boolean {
  const matches = (pattern: string) =>
    new RegExp(
      `^${pattern
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
        .join('.*')}$`,
      'i',
    ).test(action)
  return permissions.some((p) => (p.actions ?? []).some(matches) && !(p.notActions ?? []).some(matches))
}

function parsePoolId(poolId: string) {
  const match =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkManagers\/([^/]+)\/ipamPools\/([^/]+)$/i.exec(
      poolId,
    )
  if (!match) return undefined
  const [, subscriptionId, resourceGroup, networkManager, pool] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ]
  return { subscriptionId, resourceGroup, networkManager, pool }
}

/** Checks a managed tenant's registration end to end, each link of the chain separately. */
export class PreflightService {
  readonly #registry: TenantRegistryService
  readonly #store: CredentialStore
  readonly #tokens: TokenBroker
  readonly #arm: ArmClientFactory
  readonly #endpoints: AzureEndpoints
  readonly #log: Logger

  constructor(deps: {
    registry: TenantRegistryService
    store: CredentialStore
    tokens: TokenBroker
    arm: ArmClientFactory
    endpoints: AzureEndpoints
    log: Logger
  }) {
    this.#registry = deps.registry
    this.#store = deps.store
    this.#tokens = deps.tokens
    this.#arm = deps.arm
    this.#endpoints = deps.endpoints
    this.#log = deps.log.child({ module: 'preflight' })
  }

  async check(
    tenantId: string,
    input: { subscriptionId?: string; resourceGroup: string; poolIds?: string[] },
  ): Promise<PreflightReport> {
    const target = await this.#registry.targetForTenant(tenantId)
    const registered = (await this.#registry.getManagedTenant(tenantId)).subscriptionIds
    const subscriptionId = (input.subscriptionId ?? registered[0] ?? '').toLowerCase()
    if (!registered.includes(subscriptionId)) {
      throw new ProblemError(
        422,
        'subscription-not-registered',
        'Subscription not registered',
        `Subscription ${input.subscriptionId ?? '(none)'} is not registered under managed tenant ${tenantId}.`,
      )
    }
    const poolIds = input.poolIds?.length ? input.poolIds : target.managementTenant.poolIds
    const checks: PreflightCheck[] = []
    const run = async (
      name: string,
      work: () => Promise<string>,
      prerequisite = true,
      advice: Record<string, string> = {},
    ) => {
      if (!prerequisite) {
        checks.push({ name, status: 'skipped', detail: 'skipped: an earlier check failed' })
        return false
      }
      try {
        checks.push({ name, status: 'pass', detail: await work() })
        return true
      } catch (err) {
        if (err instanceof ProblemError) {
          checks.push({ name, status: 'fail', detail: err.message, code: err.code })
          return false
        }
        const failure = describeFailure(err, { target, lastResponse: undefined })
        // describeFailure's advice is written for a deployment (which the broker retries); a check is not retried.
        const what =
          advice[failure.code] ??
          (failure.transient ? 'Azure did not answer; run the preflight again.' : failure.advice)
        checks.push({ name, status: 'fail', detail: `${failure.message} — ${what}`, code: failure.code })
        return false
      }
    }

    const { app, managedTenant, managementTenant } = target
    const secret = await run('secret-readable', async () => {
      await this.#store.secret(app.secret)
      return `Key Vault secret '${app.secret.secretName}' in ${app.secret.vaultUrl} is readable.`
    })
    const primary = await run(
      'primary-token',
      async () => {
        await this.#tokens.credential(managedTenant.tenantId, app).getToken(this.#endpoints.armScope)
        return `App ${app.appId} gets an ARM token in managed tenant ${managedTenant.tenantId}.`
      },
      secret,
    )
    const auxiliary = await run(
      'auxiliary-token',
      async () => {
        await this.#tokens.credential(managementTenant.tenantId, app).getToken(this.#endpoints.armScope)
        return `App ${app.appId} gets an ARM token in management tenant ${managementTenant.tenantId} (its service principal there exists).`
      },
      secret,
    )
    for (const poolId of poolIds) {
      const pool = parsePoolId(poolId)
      const poolName = pool?.pool ?? poolId
      await run(
        `pool-readable ${poolName}`,
        async () => {
          if (!pool)
            throw new ProblemError(422, 'invalid-pool-id', 'Invalid pool id', `${poolId} is not an IPAM pool id.`)
          const client = this.#arm.network(pool.subscriptionId, { app, tenantId: managementTenant.tenantId })
          const found = await client.ipamPools.get(pool.resourceGroup, pool.networkManager, pool.pool)
          return `Pool ${found.name ?? poolName} (${(found.properties.addressPrefixes ?? []).join(', ')}) is readable.`
        },
        auxiliary,
        {
          AuthorizationFailed: `App ${app.appId} may not read pool ${poolName}: assign its service principal in management tenant ${managementTenant.tenantId} the 'IPAM Pool User' role on the pool.`,
        },
      )
      await run(
        `associate-allowed ${poolName}`,
        async () => {
          const client = this.#arm.authorization(pool!.subscriptionId, managementTenant.tenantId, app)
          const permissions = []
          for await (const p of client.permissions.listForResource(
            pool!.resourceGroup,
            'Microsoft.Network',
            `networkManagers/${pool!.networkManager}`,
            'ipamPools',
            pool!.pool,
          )) {
            permissions.push(p)
          }
          if (!allows(permissions, ASSOCIATE_ACTION)) {
            throw new ProblemError(
              422,
              'missing-role',
              'Missing role',
              `Missing role: app ${app.appId} has no 'IPAM Pool User' (${ASSOCIATE_ACTION}) on pool ${poolId} in management tenant ${managementTenant.tenantId}.`,
            )
          }
          return `App ${app.appId} may associate VNets with pool ${poolName} (IPAM Pool User).`
        },
        // Listing one's own permissions needs no role, so this runs even when the pool cannot be read.
        auxiliary && pool !== undefined,
      )
    }
    await run(
      'vnet-write-allowed',
      async () => {
        const client = this.#arm.authorization(subscriptionId, managedTenant.tenantId, app)
        const permissions = []
        for await (const p of client.permissions.listForResourceGroup(input.resourceGroup)) permissions.push(p)
        if (!allows(permissions, VNET_WRITE_ACTION)) {
          throw new ProblemError(
            422,
            'missing-role',
            'Missing role',
            `Missing role: app ${app.appId} may not write VNets in resource group ${input.resourceGroup} of subscription ${subscriptionId} ('Network Contributor' gives ${VNET_WRITE_ACTION}).`,
          )
        }
        return `App ${app.appId} may write VNets in ${input.resourceGroup}.`
      },
      primary,
    )
    await run(
      'cross-tenant-connection',
      async () => {
        const client = this.#arm.network(subscriptionId, { app, tenantId: managedTenant.tenantId })
        for await (const connection of client.subscriptionNetworkManagerConnections.list()) {
          if (connection.networkManagerId?.toLowerCase() !== managementTenant.networkManagerId.toLowerCase()) continue
          if (connection.connectionState === 'Connected')
            return `Subscription ${subscriptionId} is connected to ${managementTenant.networkManagerId}.`
          throw new ProblemError(
            422,
            'connection-not-connected',
            'Connection not connected',
            `The network manager connection ${connection.name ?? ''} is ${connection.connectionState ?? 'unknown'}: the management tenant must add a scope connection for subscription ${subscriptionId}.`,
          )
        }
        throw new ProblemError(
          422,
          'connection-missing',
          'No connection',
          `Subscription ${subscriptionId} has no network manager connection to ${managementTenant.networkManagerId}: the managed tenant accepts the management tenant's scope connection by creating one in the subscription.`,
        )
      },
      primary,
    )
    const ok = checks.every((c) => c.status === 'pass')
    this.#log.info(
      { tenantId, subscriptionId, ok, failed: checks.filter((c) => c.status !== 'pass').map((c) => c.name) },
      'preflight',
    )
    return { tenantId: managedTenant.tenantId, subscriptionId, resourceGroup: input.resourceGroup, ok, checks }
  }
}
