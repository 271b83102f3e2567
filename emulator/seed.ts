import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { parsePrefix } from './arm/allocator.ts'
import { createIpamPool } from './arm/network.ts'
import { key } from './arm/network-state.ts'
import { findRole } from './arm/rbac.ts'
import { EmulatorState } from './state.ts'

// The declarative seed: what exists in the emulated cloud when it starts. No secret is ever written
// in a seed: application passwords are generated at start, and a vault secret can take its value
// from one (`fromApplicationPassword`), which is how the broker's credential reaches Key Vault.

const Uuid = Type.String({ format: 'uuid', pattern: '^[0-9a-fA-F-]{36}$' })

export const SeedSchema = Type.Object(
  {
    tenants: Type.Array(
      Type.Object(
        {
          id: Uuid,
          displayName: Type.String(),
          subscriptions: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  id: Uuid,
                  displayName: Type.String(),
                  resourceGroups: Type.Optional(
                    Type.Array(
                      Type.Object({ name: Type.String(), location: Type.String() }, { additionalProperties: false }),
                    ),
                  ),
                },
                { additionalProperties: false },
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    applications: Type.Optional(
      Type.Array(
        Type.Object(
          {
            appId: Uuid,
            displayName: Type.String(),
            homeTenantId: Uuid,
            signInAudience: Type.Enum(['AzureADMyOrg', 'AzureADMultipleOrgs']),
            identifierUris: Type.Optional(Type.Array(Type.String())),
            appRoles: Type.Optional(Type.Array(Type.String())),
            /** How many client secrets to generate for it at start. */
            passwords: Type.Optional(Type.Integer({ minimum: 0, maximum: 4 })),
            /** How many client certificates to generate for it at start (certificate credentials). */
            certificates: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    servicePrincipals: Type.Optional(
      Type.Array(
        Type.Object({ appId: Uuid, tenantId: Uuid, objectId: Type.Optional(Uuid) }, { additionalProperties: false }),
      ),
    ),
    appRoleAssignments: Type.Optional(
      Type.Array(
        Type.Object(
          { clientAppId: Uuid, resourceAppId: Uuid, roles: Type.Array(Type.String()) },
          { additionalProperties: false },
        ),
      ),
    ),
    /** Azure RBAC: a built-in role (by name or id) for an app's service principal in a tenant, at a scope. */
    roleAssignments: Type.Optional(
      Type.Array(
        Type.Object(
          { scope: Type.String({ pattern: '^/' }), role: Type.String(), appId: Uuid, tenantId: Uuid },
          { additionalProperties: false },
        ),
      ),
    ),
    /** AVNM in the management tenant: network managers with their pool hierarchy, groups and scope connections. */
    networkManagers: Type.Optional(
      Type.Array(
        Type.Object(
          {
            subscriptionId: Uuid,
            resourceGroup: Type.String(),
            name: Type.String(),
            location: Type.String(),
            pools: Type.Optional(
              Type.Array(
                Type.Object(
                  {
                    name: Type.String(),
                    addressPrefixes: Type.Array(Type.String(), { minItems: 1 }),
                    parentPoolName: Type.Optional(Type.String()),
                    displayName: Type.Optional(Type.String()),
                    description: Type.Optional(Type.String()),
                  },
                  { additionalProperties: false },
                ),
              ),
            ),
            networkGroups: Type.Optional(Type.Array(Type.String())),
            /** Managed subscriptions this manager offers to manage (the management side of a connection). */
            scopeConnections: Type.Optional(
              Type.Array(Type.Object({ name: Type.String(), subscriptionId: Uuid }, { additionalProperties: false })),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    /** The managed side: a subscription accepting a network manager of another tenant. */
    networkManagerConnections: Type.Optional(
      Type.Array(
        Type.Object(
          { subscriptionId: Uuid, name: Type.String(), networkManagerId: Type.String({ pattern: '^/subscriptions/' }) },
          { additionalProperties: false },
        ),
      ),
    ),
    keyVaults: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ pattern: '^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$' }),
            tenantId: Uuid,
            secretOfficers: Type.Optional(Type.Array(Uuid)),
            secrets: Type.Optional(
              Type.Array(
                Type.Object(
                  {
                    name: Type.String({ pattern: '^[0-9a-zA-Z-]{1,127}$' }),
                    fromApplicationPassword: Type.Object(
                      { appId: Uuid, index: Type.Optional(Type.Integer({ minimum: 0 })) },
                      { additionalProperties: false },
                    ),
                  },
                  { additionalProperties: false },
                ),
              ),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
)

export type Seed = Static<typeof SeedSchema>

export class SeedError extends Error {
  override name = 'SeedError'
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SeedError(message)
}

export async function readSeed(file: string): Promise<Seed> {
  return parseSeed(JSON.parse(await readFile(file, 'utf8')) as unknown)
}

export function parseSeed(input: unknown): Seed {
  const errors = [...Value.Errors(SeedSchema, input)]
  if (errors.length) {
    throw new SeedError(`invalid seed: ${errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`)
  }
  return input as Seed
}

/** Builds the emulated world from a seed; references between records are checked. */
export function applySeed(seed: Seed, state = new EmulatorState()): EmulatorState {
  for (const tenant of seed.tenants) {
    state.tenants.set(tenant.id, { id: tenant.id, displayName: tenant.displayName })
    for (const sub of tenant.subscriptions ?? []) {
      state.subscriptions.set(sub.id, { id: sub.id, tenantId: tenant.id, displayName: sub.displayName })
      for (const group of sub.resourceGroups ?? []) {
        state.putResourceGroup({ subscriptionId: sub.id, name: group.name, location: group.location, tags: {} })
      }
    }
  }
  for (const app of seed.applications ?? []) {
    check(state.tenants.has(app.homeTenantId), `application ${app.appId}: unknown home tenant ${app.homeTenantId}`)
    const application = {
      appId: app.appId,
      objectId: randomUUID(),
      homeTenantId: app.homeTenantId,
      displayName: app.displayName,
      signInAudience: app.signInAudience,
      identifierUris: app.identifierUris ?? [],
      appRoles: app.appRoles ?? [],
      passwords: [],
      certificates: [],
    }
    state.applications.set(app.appId, application)
    for (let i = 0; i < (app.passwords ?? 0); i++) state.addPassword(application)
    // Registering an app creates its service principal in the home tenant, as in Entra.
    state.servicePrincipals.push({ objectId: randomUUID(), appId: app.appId, tenantId: app.homeTenantId })
  }
  for (const sp of seed.servicePrincipals ?? []) {
    check(state.applications.has(sp.appId), `service principal: unknown application ${sp.appId}`)
    check(state.tenants.has(sp.tenantId), `service principal of ${sp.appId}: unknown tenant ${sp.tenantId}`)
    if (!state.servicePrincipal(sp.appId, sp.tenantId)) {
      state.servicePrincipals.push({ objectId: sp.objectId ?? randomUUID(), appId: sp.appId, tenantId: sp.tenantId })
    }
  }
  for (const assignment of seed.appRoleAssignments ?? []) {
    const api = state.applications.get(assignment.resourceAppId)
    check(api, `app role assignment: unknown API application ${assignment.resourceAppId}`)
    check(
      state.applications.has(assignment.clientAppId),
      `app role assignment: unknown client ${assignment.clientAppId}`,
    )
    for (const role of assignment.roles)
      check(api.appRoles.includes(role), `app role ${role} is not defined by ${api.appId}`)
    state.appRoleAssignments.push({ ...assignment })
  }
  for (const assignment of seed.roleAssignments ?? []) {
    const role = findRole(assignment.role)
    check(role, `role assignment at ${assignment.scope}: unknown role ${assignment.role}`)
    const sp = state.servicePrincipal(assignment.appId, assignment.tenantId)
    check(
      sp,
      `role assignment at ${assignment.scope}: ${assignment.appId} has no service principal in ${assignment.tenantId}`,
    )
    const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(assignment.scope)?.[1]
    check(
      subscriptionId && state.subscriptions.get(subscriptionId)?.tenantId === assignment.tenantId,
      `role assignment at ${assignment.scope}: not a subscription of tenant ${assignment.tenantId}`,
    )
    state.rbac.assign({
      scope: assignment.scope,
      roleDefinitionId: `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${role.id}`,
      principalId: sp.objectId,
      principalType: 'ServicePrincipal',
      tenantId: assignment.tenantId,
    })
  }
  const net = state.network
  for (const nm of seed.networkManagers ?? []) {
    check(
      state.resourceGroup(nm.subscriptionId, nm.resourceGroup),
      `network manager ${nm.name}: unknown resource group ${nm.resourceGroup}`,
    )
    const id = `/subscriptions/${nm.subscriptionId}/resourceGroups/${nm.resourceGroup}/providers/Microsoft.Network/networkManagers/${nm.name}`
    net.networkManagers.set(key(id), { id, name: nm.name, location: nm.location, tags: {}, description: '' })
    for (const pool of nm.pools ?? []) {
      try {
        createIpamPool(net, {
          id: `${id}/ipamPools/${pool.name}`,
          name: pool.name,
          networkManagerId: id,
          location: nm.location,
          tags: {},
          description: pool.description ?? '',
          displayName: pool.displayName ?? '',
          parentPoolName: pool.parentPoolName ?? '',
          addressPrefixes: pool.addressPrefixes.map(parsePrefix),
        })
      } catch (err) {
        throw new SeedError(`network manager ${nm.name}, pool ${pool.name}: ${(err as Error).message}`)
      }
    }
    for (const group of nm.networkGroups ?? []) {
      const groupId = `${id}/networkGroups/${group}`
      net.networkGroups.set(key(groupId), {
        id: groupId,
        networkManagerId: id,
        name: group,
        description: '',
        members: new Map(),
      })
    }
    for (const connection of nm.scopeConnections ?? []) {
      const tenantId = state.subscriptions.get(connection.subscriptionId)?.tenantId
      check(
        tenantId,
        `network manager ${nm.name}: scope connection to unknown subscription ${connection.subscriptionId}`,
      )
      const connectionId = `${id}/scopeConnections/${connection.name}`
      net.scopeConnections.set(key(connectionId), {
        id: connectionId,
        networkManagerId: id,
        tenantId,
        resourceId: `/subscriptions/${connection.subscriptionId}`,
        description: '',
      })
    }
  }
  for (const connection of seed.networkManagerConnections ?? []) {
    check(
      state.subscriptions.has(connection.subscriptionId),
      `network manager connection ${connection.name}: unknown subscription`,
    )
    const id = `/subscriptions/${connection.subscriptionId}/providers/Microsoft.Network/networkManagerConnections/${connection.name}`
    net.managerConnections.set(key(id), {
      id,
      subscriptionId: connection.subscriptionId,
      networkManagerId: connection.networkManagerId,
      description: '',
    })
  }
  for (const kv of seed.keyVaults ?? []) {
    check(state.tenants.has(kv.tenantId), `key vault ${kv.name}: unknown tenant ${kv.tenantId}`)
    const vault = { name: kv.name, tenantId: kv.tenantId, secretOfficers: kv.secretOfficers ?? [], secrets: new Map() }
    state.vaults.set(kv.name, vault)
    for (const secret of kv.secrets ?? []) {
      const { appId, index = 0 } = secret.fromApplicationPassword
      const password = state.applications.get(appId)?.passwords[index]
      check(password, `key vault ${kv.name} secret ${secret.name}: application ${appId} has no password #${index}`)
      state.setSecret(vault, secret.name, password.secretText)
    }
  }
  return state
}
