import { existsSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { AddressSpace, formatPrefix, parsePrefix, type Prefix } from './arm/allocator.ts'
import { key, type PoolAssociation, type StaticCidr } from './arm/network-state.ts'
import { EmulatorState } from './state.ts'

// The emulated world written to a file and read back, so that a standalone emulator keeps its
// state across restarts. The file holds the emulated tenants' generated secrets: it is written
// readable by its owner only and belongs in a git-ignored folder.

const VERSION = 1

const prefixesOut = (prefixes: Prefix[]) => prefixes.map(formatPrefix)
const prefixesIn = (prefixes: string[]) => prefixes.map(parsePrefix)

/** Dates survive JSON as ISO strings and come back as Dates; bigints never reach it (prefixes are text). */
function revive(_key: string, value: unknown): unknown {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value)
    ? new Date(value)
    : value
}

function toSnapshot(state: EmulatorState) {
  const net = state.network
  return {
    version: VERSION,
    tenants: [...state.tenants.values()],
    subscriptions: [...state.subscriptions.values()],
    applications: [...state.applications.values()],
    servicePrincipals: state.servicePrincipals,
    appRoleAssignments: state.appRoleAssignments,
    vaults: [...state.vaults.values()].map((vault) => ({ ...vault, secrets: [...vault.secrets.entries()] })),
    resourceGroups: [...state.resourceGroups.values()],
    roleAssignments: state.rbac.assignments,
    networkManagers: [...net.networkManagers.values()],
    pools: [...net.pools.values()].map((pool) => ({
      ...pool,
      addressPrefixes: prefixesOut(pool.addressPrefixes),
      // Everything taken from the pool, child pools and static CIDRs included, as handed out.
      taken: prefixesOut(pool.space.takenList()),
      space: undefined,
      children: [...pool.children],
      associations: [...pool.associations.values()].map((a) => ({ ...a, prefixes: prefixesOut(a.prefixes) })),
      staticCidrs: [...pool.staticCidrs.values()].map((c) => ({ ...c, prefixes: prefixesOut(c.prefixes) })),
    })),
    vnets: [...net.vnets.values()].map((vnet) => ({
      ...vnet,
      staticPrefixes: prefixesOut(vnet.staticPrefixes),
      allocations: vnet.allocations.map((a) => ({ ...a, prefixes: prefixesOut(a.prefixes) })),
    })),
    scopeConnections: [...net.scopeConnections.values()],
    managerConnections: [...net.managerConnections.values()],
    networkGroups: [...net.networkGroups.values()].map((group) => ({ ...group, members: [...group.members.values()] })),
  }
}

type Snapshot = ReturnType<typeof toSnapshot>

export async function saveSnapshot(state: EmulatorState, file: string): Promise<void> {
  const snapshot = toSnapshot(state)
  const temporary = `${file}.tmp`
  await writeFile(temporary, JSON.stringify(snapshot), { mode: 0o600 })
  await rename(temporary, file)
}

export async function loadSnapshot(file: string): Promise<EmulatorState | undefined> {
  if (!existsSync(file)) return undefined
  const snapshot = JSON.parse(await readFile(file, 'utf8'), revive) as Snapshot
  if (snapshot.version !== VERSION) throw new Error(`${file}: snapshot version ${snapshot.version} is not supported`)
  const state = new EmulatorState()
  const net = state.network
  for (const tenant of snapshot.tenants) state.tenants.set(tenant.id, tenant)
  for (const sub of snapshot.subscriptions) state.subscriptions.set(sub.id, sub)
  for (const app of snapshot.applications) state.applications.set(app.appId, app)
  state.servicePrincipals.push(...snapshot.servicePrincipals)
  state.appRoleAssignments.push(...snapshot.appRoleAssignments)
  for (const vault of snapshot.vaults) state.vaults.set(vault.name, { ...vault, secrets: new Map(vault.secrets) })
  for (const group of snapshot.resourceGroups) state.putResourceGroup(group)
  state.rbac.assignments.push(...snapshot.roleAssignments)
  for (const nm of snapshot.networkManagers) net.networkManagers.set(key(nm.id), nm)
  for (const pool of snapshot.pools) {
    const space = new AddressSpace(prefixesIn(pool.addressPrefixes))
    space.reserve(prefixesIn(pool.taken))
    net.pools.set(key(pool.id), {
      ...pool,
      addressPrefixes: prefixesIn(pool.addressPrefixes),
      space,
      children: new Set(pool.children),
      associations: new Map(
        pool.associations.map((a): [string, PoolAssociation] => [
          key(a.resourceId),
          { ...a, prefixes: prefixesIn(a.prefixes) },
        ]),
      ),
      staticCidrs: new Map(
        pool.staticCidrs.map((c): [string, StaticCidr] => [
          c.name.toLowerCase(),
          { ...c, prefixes: prefixesIn(c.prefixes) },
        ]),
      ),
    })
  }
  for (const vnet of snapshot.vnets) {
    net.vnets.set(key(vnet.id), {
      ...vnet,
      staticPrefixes: prefixesIn(vnet.staticPrefixes),
      allocations: vnet.allocations.map((a) => ({ ...a, prefixes: prefixesIn(a.prefixes) })),
    })
  }
  for (const c of snapshot.scopeConnections) net.scopeConnections.set(key(c.id), c)
  for (const c of snapshot.managerConnections) net.managerConnections.set(key(c.id), c)
  for (const group of snapshot.networkGroups) {
    net.networkGroups.set(key(group.id), {
      ...group,
      members: new Map(group.members.map((m) => [m.name.toLowerCase(), m])),
    })
  }
  return state
}
