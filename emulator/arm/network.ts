import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ArmError, resourceNotFound } from '../common/errors.ts'
import type { EmulatorState } from '../state.ts'
import {
  AddressSpace,
  ConflictError,
  contains,
  ExhaustedError,
  formatPrefix,
  mergePrefixes,
  type Prefix,
  PrefixError,
  parsePrefix,
  prefixSize,
} from './allocator.ts'
import { authorize, authorizeLinked } from './authorize.ts'
import {
  type AsyncOperation,
  type IpamPool,
  key,
  type NetworkState,
  type VirtualNetwork,
  type VnetPoolAllocation,
} from './network-state.ts'
import { caller } from './routes.ts'

// Microsoft.Network: network managers, IPAM pools (hierarchy, usage, associated resources) and
// virtual networks that draw their address space from pools, with ARM's long-running operations.

const MAX_POOL_DEPTH = 7
const RG = '/subscriptions/:sub/resourceGroups/:rg'
const NM = `${RG}/providers/Microsoft.Network/networkManagers/:nm`
const NAME = /^[0-9a-zA-Z]([0-9a-zA-Z_.-]{0,62}[0-9a-zA-Z_])?$/

interface Params {
  sub: string
  rg: string
  nm: string
  pool: string
  vnet: string
}

type Body = { location?: string; tags?: Record<string, string>; properties?: Record<string, unknown> } | undefined

const resourceId = (request: FastifyRequest) => (request.url.split('?')[0] ?? '').replace(/\/+$/, '')

function requireGroup(state: EmulatorState, { sub, rg }: Pick<Params, 'sub' | 'rg'>) {
  if (!state.resourceGroup(sub, rg))
    throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`)
}

function prefixes(values: unknown, field: string): Prefix[] {
  if (!Array.isArray(values) || values.some((value) => typeof value !== 'string')) {
    throw new ArmError(
      400,
      'InvalidRequestFormat',
      `Cannot parse the request: ${field} must be an array of CIDR strings.`,
    )
  }
  try {
    return (values as string[]).map(parsePrefix)
  } catch (err) {
    throw new ArmError(400, 'InvalidAddressPrefixFormat', `${field}: ${(err as Error).message}`)
  }
}

/** A string field of a request body; anything else counts as absent. */
const text = (value: unknown, fallback = ''): string =>
  typeof value === 'string' ? value : typeof value === 'number' ? String(value) : fallback

const ipType = (family: 4 | 6) => (family === 4 ? 'IPv4' : 'IPv6')

/** What a new pool is made of; the rest (space, depth, children...) is derived. */
export type NewPool = Omit<IpamPool, 'space' | 'depth' | 'children' | 'associations' | 'staticCidrs'>

/** A new pool: a child's space must lie inside its parent and is taken from it (siblings stay disjoint). */
export function createIpamPool(net: NetworkState, fields: NewPool): IpamPool {
  const { id, name, networkManagerId, parentPoolName, addressPrefixes } = fields
  let space: AddressSpace
  try {
    space = new AddressSpace(addressPrefixes)
  } catch (err) {
    throw new ArmError(400, 'InvalidAddressPrefixFormat', (err as Error).message)
  }
  let parent: IpamPool | undefined
  if (parentPoolName) {
    parent = net.pools.get(key(`${networkManagerId}/ipamPools/${parentPoolName}`))
    if (!parent) {
      throw new ArmError(
        400,
        'ParentPoolNotFound',
        `Parent pool ${parentPoolName} was not found in network manager ${networkManagerId.split('/').at(-1) ?? ''}.`,
      )
    }
    if (parent.depth + 1 > MAX_POOL_DEPTH) {
      throw new ArmError(400, 'IpamPoolHierarchyTooDeep', `A pool hierarchy has at most ${MAX_POOL_DEPTH} levels.`)
    }
    const outside = addressPrefixes.filter((p) => !parent!.addressPrefixes.some((q) => contains(q, p)))
    if (outside.length) {
      throw new ArmError(
        400,
        'PoolAddressPrefixesNotInParent',
        `Address prefixes ${outside.map(formatPrefix).join(', ')} of pool ${name} are not within parent pool ${parentPoolName}.`,
      )
    }
    try {
      parent.space.reserve(addressPrefixes)
    } catch (err) {
      if (err instanceof ConflictError || err instanceof PrefixError) {
        throw new ArmError(
          400,
          'PoolAddressPrefixesOverlap',
          `Address prefixes of pool ${name} overlap space already used in parent pool ${parentPoolName}: ${err.message}`,
        )
      }
      throw err
    }
    parent.children.add(key(id))
  }
  const pool: IpamPool = {
    ...fields,
    space,
    depth: parent ? parent.depth + 1 : 1,
    children: new Set(),
    associations: new Map(),
    staticCidrs: new Map(),
  }
  net.pools.set(key(id), pool)
  return pool
}

/** Connected when the management side's scope connection and the managed side's connection both exist. */
export function scopeConnected(state: EmulatorState, networkManagerId: string, subscriptionId: string): boolean {
  const net = state.network
  const managed = `/subscriptions/${subscriptionId}`.toLowerCase()
  const tenantId = state.subscriptions.get(subscriptionId.toLowerCase())?.tenantId
  const offered = [...net.scopeConnections.values()].some(
    (c) =>
      key(c.networkManagerId) === key(networkManagerId) && key(c.resourceId) === managed && c.tenantId === tenantId,
  )
  const accepted = [...net.managerConnections.values()].some(
    (c) => c.subscriptionId === subscriptionId.toLowerCase() && key(c.networkManagerId) === key(networkManagerId),
  )
  return offered && accepted
}

interface SubnetInput {
  name?: unknown
  properties?: {
    ipamPoolPrefixAllocations?: { numberOfIpAddresses?: unknown; pool?: { id?: unknown }; id?: unknown }[]
    [property: string]: unknown
  }
  [property: string]: unknown
}

/** A subnet's static prefixes (`addressPrefix` and `addressPrefixes`); none when it draws on a pool. */
function staticSubnetPrefixes(vnetId: string, subnet: SubnetInput): Prefix[] {
  const properties = subnet.properties ?? {}
  if (properties.ipamPoolPrefixAllocations?.length) return []
  const listed = properties['addressPrefixes']
  const values = [
    ...(properties['addressPrefix'] === undefined ? [] : [properties['addressPrefix']]),
    ...(Array.isArray(listed) ? (listed as unknown[]) : listed === undefined ? [] : [listed]),
  ]
  return values.map((value) => {
    try {
      if (typeof value === 'string') return parsePrefix(value)
    } catch (err) {
      if (!(err instanceof PrefixError)) throw err
    }
    throw new ArmError(
      400,
      'InvalidAddressPrefixFormat',
      `Address prefix ${typeof value === 'string' ? value : JSON.stringify(value)} of resource ${vnetId}/subnets/${text(subnet.name)} is not formatted correctly.`,
    )
  })
}

/** Subnets with ipamPoolPrefixAllocations take their space from the VNet's own allocation of that pool, lowest first. */
function carveSubnets(
  vnetId: string,
  subnets: SubnetInput[],
  allocations: VnetPoolAllocation[],
): Record<string, unknown>[] {
  const spaces = new Map(allocations.map((a) => [key(a.poolId), new AddressSpace(a.prefixes)]))
  return subnets.map((subnet) => {
    const name = text(subnet.name)
    const requested = subnet.properties?.ipamPoolPrefixAllocations ?? []
    if (!requested.length) return { ...subnet, id: `${vnetId}/subnets/${name}` }
    const carved = requested.map((allocation) => {
      const poolId = text(allocation.pool?.id, text(allocation.id))
      const count = text(allocation.numberOfIpAddresses)
      if (!/^[1-9][0-9]{0,38}$/.test(count)) {
        throw new ArmError(
          400,
          'InvalidRequestFormat',
          `Subnet ${name}: numberOfIpAddresses must be a positive whole number as a string.`,
        )
      }
      try {
        return {
          numberOfIpAddresses: count,
          pool: { id: poolId },
          allocatedAddressPrefixes: spaces.get(key(poolId))!.allocate(BigInt(count)).map(formatPrefix),
        }
      } catch (err) {
        if (!(err instanceof ExhaustedError)) throw err
        throw new ArmError(
          400,
          'SubnetIpamAllocationExceedsVirtualNetworkSpace',
          `Subnet ${name} asks for ${count} addresses of pool ${poolId}; the virtual network has only ${err.available} left in it.`,
        )
      }
    })
    return {
      ...subnet,
      id: `${vnetId}/subnets/${name}`,
      properties: {
        ...subnet.properties,
        provisioningState: 'Succeeded',
        addressPrefixes: carved.flatMap((c) => c.allocatedAddressPrefixes),
        ipamPoolPrefixAllocations: carved,
      },
    }
  })
}

export async function networkRoutes(app: FastifyInstance, { state }: { state: EmulatorState }) {
  const net = state.network
  /** The caller may perform `action` on the resource the request addresses. */
  const can = (request: FastifyRequest, action: string) =>
    authorize(state, caller(request), action, resourceId(request))

  /** Completes due operations: the emulator's LROs end when first polled after their duration. */
  const settle = () => {
    const now = Date.now()
    for (const operation of net.operations.values()) {
      if (!operation.completed && operation.doneAt <= now) {
        operation.completed = true
        operation.complete(operation)
      }
    }
  }

  const asyncHeaders = (
    reply: FastifyReply,
    sub: string,
    location: string,
    complete: (operation: AsyncOperation) => void,
    withLocation: boolean,
  ) => {
    const operation = net.newOperation(sub, location, Date.now() + state.lroDurationMs, complete)
    const base = `${reply.request.protocol}://${reply.request.host}/subscriptions/${sub}/providers/Microsoft.Network/locations/${location}`
    const apiVersion = (reply.request.query as Record<string, string>)['api-version'] ?? ''
    reply.header('azure-asyncoperation', `${base}/operations/${operation.id}?api-version=${apiVersion}`)
    if (withLocation) reply.header('location', `${base}/operationResults/${operation.id}?api-version=${apiVersion}`)
    reply.header('retry-after', String(Math.max(1, Math.ceil(state.lroDurationMs / 1000))))
  }

  const operationFor = (request: FastifyRequest<{ Params: { sub: string; id: string } }>) => {
    settle()
    const operation = net.operations.get(request.params.id)
    if (!operation || operation.subscriptionId !== request.params.sub.toLowerCase()) {
      throw new ArmError(404, 'OperationNotFound', `The operation '${request.params.id}' could not be found.`)
    }
    return operation
  }

  // Operations complete when a request first finds them due, so what a client reads is settled.
  app.addHook('preHandler', async () => settle())

  app.get<{ Params: { sub: string; loc: string; id: string } }>(
    '/subscriptions/:sub/providers/Microsoft.Network/locations/:loc/operations/:id',
    async (request, reply) => {
      const operation = operationFor(request)
      if (!operation.completed) return reply.header('retry-after', '1').send({ status: 'InProgress' })
      return operation.error ? { status: 'Failed', error: operation.error } : { status: 'Succeeded' }
    },
  )

  app.get<{ Params: { sub: string; loc: string; id: string } }>(
    '/subscriptions/:sub/providers/Microsoft.Network/locations/:loc/operationResults/:id',
    async (request, reply) => {
      const operation = operationFor(request)
      if (!operation.completed)
        return reply
          .code(202)
          .header('retry-after', '1')
          .header('location', `${request.protocol}://${request.host}${request.url}`)
          .send()
      return reply.code(204).send()
    },
  )

  // ---- network managers ----
  const managerBody = (id: string) => {
    const nm = net.networkManagers.get(key(id))!
    return {
      name: nm.name,
      id: nm.id,
      type: 'Microsoft.Network/networkManagers',
      location: nm.location,
      tags: nm.tags,
      etag: 'W/"00000000-0000-0000-0000-000000000000"',
      properties: {
        description: nm.description,
        networkManagerScopes: { managementGroups: [], subscriptions: [] },
        networkManagerScopeAccesses: [],
        provisioningState: 'Succeeded',
        resourceGuid: randomUUID(),
      },
    }
  }

  app.put<{ Params: Params; Body: Body }>(NM, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/write')
    requireGroup(state, request.params)
    if (!request.body?.location)
      throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.')
    const existed = net.networkManagers.has(key(id))
    net.networkManagers.set(key(id), {
      id,
      name: request.params.nm,
      location: request.body.location,
      tags: request.body.tags ?? {},
      description: text(request.body.properties?.['description'], ''),
    })
    return reply.code(existed ? 200 : 201).send(managerBody(id))
  })

  app.get<{ Params: Params }>(NM, async (request) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/read')
    if (!net.networkManagers.has(key(id)))
      throw resourceNotFound('Microsoft.Network/networkManagers', request.params.nm, request.params.rg)
    return managerBody(id)
  })

  // ---- IPAM pools ----
  const poolBody = (pool: IpamPool) => ({
    name: pool.name,
    id: pool.id,
    type: 'Microsoft.Network/networkManagers/ipamPools',
    location: pool.location,
    tags: pool.tags,
    etag: 'W/"00000000-0000-0000-0000-000000000000"',
    properties: {
      description: pool.description,
      displayName: pool.displayName,
      ipAddressType: [ipType(pool.space.family)],
      parentPoolName: pool.parentPoolName,
      addressPrefixes: pool.addressPrefixes.map(formatPrefix),
      provisioningState: 'Succeeded',
    },
  })

  const poolOf = (request: FastifyRequest<{ Params: Params }>): IpamPool => {
    const id = resourceId(request).replace(/\/(getPoolUsage|listAssociatedResources|staticCidrs(\/[^/]+)?)$/i, '')
    const pool = net.pools.get(key(id))
    if (!pool)
      throw resourceNotFound(
        'Microsoft.Network/networkManagers/ipamPools',
        `${request.params.nm}/${request.params.pool}`,
        request.params.rg,
      )
    return pool
  }

  app.put<{ Params: Params; Body: Body }>(`${NM}/ipamPools/:pool`, async (request, reply) => {
    const id = resourceId(request)
    const { nm, pool: name } = request.params
    authorize(state, caller(request), 'Microsoft.Network/networkManagers/ipamPools/write', id)
    const managerId = id.slice(0, id.toLowerCase().indexOf('/ipampools/'))
    if (!net.networkManagers.has(key(managerId)))
      throw resourceNotFound('Microsoft.Network/networkManagers', nm, request.params.rg)
    if (!NAME.test(name)) throw new ArmError(400, 'InvalidResourceName', `Resource name ${name} is invalid.`)
    const body = request.body ?? {}
    if (!body.location)
      throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.')
    const properties = body.properties ?? {}
    const addressPrefixes = prefixes(properties['addressPrefixes'], 'properties.addressPrefixes')
    if (addressPrefixes.length === 0)
      throw new ArmError(400, 'InvalidRequestFormat', 'properties.addressPrefixes must not be empty.')

    const existing = net.pools.get(key(id))
    if (existing) {
      // Address space and parent are fixed once created; descriptive fields and tags may change.
      const same =
        mergePrefixes(addressPrefixes).map(formatPrefix).join() ===
        mergePrefixes(existing.addressPrefixes).map(formatPrefix).join()
      if (!same || text(properties['parentPoolName'], '') !== existing.parentPoolName) {
        throw new ArmError(
          400,
          'IpamPoolUpdateNotAllowed',
          `The address prefixes and parent of pool ${name} cannot be changed.`,
        )
      }
      existing.description = text(properties['description'], existing.description)
      existing.displayName = text(properties['displayName'], existing.displayName)
      existing.tags = body.tags ?? existing.tags
      // An update is a long-running operation on ARM: 200 with Updating, then polled to Succeeded.
      asyncHeaders(reply, request.params.sub.toLowerCase(), existing.location, () => undefined, false)
      const updated = poolBody(existing)
      return reply.code(200).send({ ...updated, properties: { ...updated.properties, provisioningState: 'Updating' } })
    }

    const pool = createIpamPool(net, {
      id,
      name,
      networkManagerId: managerId,
      location: body.location,
      tags: body.tags ?? {},
      description: text(properties['description'], ''),
      displayName: text(properties['displayName'], ''),
      parentPoolName: text(properties['parentPoolName'], ''),
      addressPrefixes,
    })
    return reply.code(201).send(poolBody(pool))
  })

  app.patch<{ Params: Params; Body: Body }>(`${NM}/ipamPools/:pool`, async (request) => {
    can(request, 'Microsoft.Network/networkManagers/ipamPools/write')
    const pool = poolOf(request)
    const properties = request.body?.properties ?? {}
    const unsupported = Object.keys(properties).filter((name) => !['description', 'displayName'].includes(name))
    if (unsupported.length) {
      throw new ArmError(
        400,
        'InvalidRequestFormat',
        `PATCH changes tags, description and displayName only (got ${unsupported.join(', ')}).`,
      )
    }
    pool.description = text(properties['description'], pool.description)
    pool.displayName = text(properties['displayName'], pool.displayName)
    pool.tags = request.body?.tags ?? pool.tags
    return poolBody(pool)
  })

  app.get<{ Params: Params }>(`${NM}/ipamPools/:pool`, async (request) => {
    can(request, 'Microsoft.Network/networkManagers/ipamPools/read')
    return poolBody(poolOf(request))
  })

  app.get<{ Params: Params; Querystring: { skipToken?: string; top?: string } }>(`${NM}/ipamPools`, async (request) => {
    const scope = resourceId(request)
    authorize(state, caller(request), 'Microsoft.Network/networkManagers/ipamPools/read', scope)
    const all = [...net.pools.values()].filter(
      (pool) => key(pool.networkManagerId) === key(scope.replace(/\/ipamPools$/i, '')),
    )
    const skip = Number(request.query.skipToken ?? 0) || 0
    const top = Math.min(Math.max(Number(request.query.top ?? 100) || 100, 1), 100)
    const page = all.slice(skip, skip + top)
    const next =
      skip + top < all.length
        ? `${request.protocol}://${request.host}${scope}?api-version=${(request.query as Record<string, string>)['api-version']}&top=${top}&skipToken=${skip + top}`
        : undefined
    return { value: page.map(poolBody), ...(next && { nextLink: next }) }
  })

  app.delete<{ Params: Params }>(`${NM}/ipamPools/:pool`, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/ipamPools/delete')
    const pool = net.pools.get(key(id))
    if (!pool) return reply.code(204).send()
    if (pool.children.size || pool.associations.size || pool.staticCidrs.size) {
      throw new ArmError(
        400,
        'IpamPoolInUse',
        `Pool ${pool.name} still has ${pool.children.size} child pool(s) and ${pool.associations.size} associated resource(s); remove them first.`,
      )
    }
    net.pools.delete(key(id))
    if (pool.parentPoolName) {
      const parent = net.pools.get(key(`${pool.networkManagerId}/ipamPools/${pool.parentPoolName}`))
      parent?.space.release(pool.addressPrefixes)
      parent?.children.delete(key(id))
    }
    asyncHeaders(reply, request.params.sub.toLowerCase(), pool.location, () => undefined, true)
    return reply.code(202).send()
  })

  // Static CIDRs are reported as reserved; child pools and associated resources as allocated.
  const usage = (pool: IpamPool) => {
    const space = pool.space.usage()
    const childPools = [...pool.children]
      .map((childKey) => net.pools.get(childKey))
      .filter((child) => child !== undefined)
    const reserved = mergePrefixes([...pool.staticCidrs.values()].flatMap((cidr) => cidr.prefixes))
    const reservedCount = reserved.reduce((sum, p) => sum + prefixSize(p), 0n)
    const allocated = mergePrefixes([
      ...childPools.flatMap((child) => child.addressPrefixes),
      ...[...pool.associations.values()].flatMap((association) => association.prefixes),
    ])
    return {
      addressPrefixes: space.addressPrefixes.map(formatPrefix),
      childPools: childPools.map((child) => ({
        resourceId: child.id,
        addressPrefixes: child.addressPrefixes.map(formatPrefix),
      })),
      allocatedAddressPrefixes: allocated.map(formatPrefix),
      reservedAddressPrefixes: reserved.map(formatPrefix),
      availableAddressPrefixes: space.availablePrefixes.map(formatPrefix),
      totalNumberOfIPAddresses: space.total.toString(),
      numberOfAllocatedIPAddresses: (space.taken - reservedCount).toString(),
      numberOfReservedIPAddresses: reservedCount.toString(),
      numberOfAvailableIPAddresses: space.available.toString(),
    }
  }

  // ---- static CIDRs: pool space held without a resource ----
  const cidrBody = (
    pool: IpamPool,
    cidr: { id: string; name: string; description: string; prefixes: Prefix[]; numberOfIPAddressesToAllocate: string },
  ) => ({
    name: cidr.name,
    id: cidr.id,
    type: 'Microsoft.Network/networkManagers/ipamPools/staticCidrs',
    properties: {
      description: cidr.description,
      addressPrefixes: mergePrefixes(cidr.prefixes).map(formatPrefix),
      numberOfIPAddressesToAllocate: cidr.numberOfIPAddressesToAllocate,
      totalNumberOfIPAddresses: cidr.prefixes.reduce((sum, p) => sum + prefixSize(p), 0n).toString(),
      provisioningState: 'Succeeded',
    },
  })

  const staticCidrPath = `${NM}/ipamPools/:pool/staticCidrs/:cidr`
  app.put<{ Params: Params & { cidr: string }; Body: Body }>(staticCidrPath, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/ipamPools/staticCidrs/write')
    const pool = poolOf(request)
    const properties = request.body?.properties ?? {}
    const requested =
      properties['addressPrefixes'] === undefined
        ? []
        : prefixes(properties['addressPrefixes'], 'properties.addressPrefixes')
    const count = text(properties['numberOfIPAddressesToAllocate'])
    if (requested.length === 0 && !/^[1-9][0-9]{0,38}$/.test(count)) {
      throw new ArmError(
        400,
        'InvalidRequestFormat',
        'Give properties.addressPrefixes or a positive properties.numberOfIPAddressesToAllocate (a string).',
      )
    }
    const name = request.params.cidr
    const existing = pool.staticCidrs.get(name.toLowerCase())
    if (existing) pool.space.release(existing.prefixes)
    let taken: Prefix[]
    try {
      if (requested.length) {
        pool.space.reserve(requested)
        taken = requested
      } else {
        taken = pool.space.allocate(BigInt(count))
      }
    } catch (err) {
      if (existing) pool.space.reserve(existing.prefixes)
      if (err instanceof ExhaustedError)
        throw new ArmError(
          400,
          'IpamPoolExhausted',
          `IPAM pool ${pool.id} cannot provide ${count} addresses: only ${err.available} are free.`,
        )
      if (err instanceof ConflictError || err instanceof PrefixError)
        throw new ArmError(400, 'StaticCidrConflict', `Static CIDR ${name}: ${err.message}`)
      throw err
    }
    const cidr = {
      id,
      name,
      description: text(properties['description']),
      prefixes: taken,
      numberOfIPAddressesToAllocate: requested.length ? '' : count,
    }
    pool.staticCidrs.set(name.toLowerCase(), cidr)
    return reply.code(existing ? 200 : 201).send(cidrBody(pool, cidr))
  })

  app.get<{ Params: Params & { cidr: string } }>(staticCidrPath, async (request) => {
    can(request, 'Microsoft.Network/networkManagers/ipamPools/staticCidrs/read')
    const pool = poolOf(request)
    const cidr = pool.staticCidrs.get(request.params.cidr.toLowerCase())
    if (!cidr)
      throw resourceNotFound(
        'Microsoft.Network/networkManagers/ipamPools/staticCidrs',
        `${request.params.nm}/${request.params.pool}/${request.params.cidr}`,
        request.params.rg,
      )
    return cidrBody(pool, cidr)
  })

  app.get<{ Params: Params }>(`${NM}/ipamPools/:pool/staticCidrs`, async (request) => {
    can(request, 'Microsoft.Network/networkManagers/ipamPools/staticCidrs/read')
    const pool = poolOf(request)
    return { value: [...pool.staticCidrs.values()].map((cidr) => cidrBody(pool, cidr)), nextLink: '' }
  })

  app.delete<{ Params: Params & { cidr: string } }>(staticCidrPath, async (request, reply) => {
    can(request, 'Microsoft.Network/networkManagers/ipamPools/staticCidrs/delete')
    const pool = poolOf(request)
    const cidr = pool.staticCidrs.get(request.params.cidr.toLowerCase())
    if (!cidr) return reply.code(204).send()
    pool.space.release(cidr.prefixes)
    pool.staticCidrs.delete(request.params.cidr.toLowerCase())
    return reply.code(200).send()
  })

  app.post<{ Params: Params }>(`${NM}/ipamPools/:pool/getPoolUsage`, async (request) => {
    const pool = poolOf(request)
    authorize(state, caller(request), 'Microsoft.Network/networkManagers/ipamPools/getPoolUsage/action', pool.id)
    return usage(pool)
  })

  app.post<{ Params: Params }>(`${NM}/ipamPools/:pool/listAssociatedResources`, async (request) => {
    const pool = poolOf(request)
    authorize(
      state,
      caller(request),
      'Microsoft.Network/networkManagers/ipamPools/listAssociatedResources/action',
      pool.id,
    )
    return {
      value: [...pool.associations.values()].map((association) => ({
        resourceId: association.resourceId,
        poolId: pool.id,
        description: '',
        addressPrefixes: mergePrefixes(association.prefixes).map(formatPrefix),
        reservedPrefixes: [],
        totalNumberOfIPAddresses: association.prefixes.reduce((sum, p) => sum + prefixSize(p), 0n).toString(),
        numberOfReservedIPAddresses: '0',
        createdAt: association.createdAt.toISOString(),
        reservationExpiresAt: null,
      })),
    }
  })

  // ---- virtual networks ----
  const vnetBody = (vnet: VirtualNetwork) => {
    const allocated = vnet.allocations.flatMap((a) => a.prefixes)
    return {
      name: vnet.name,
      id: vnet.id,
      etag: vnet.etag,
      type: 'Microsoft.Network/virtualNetworks',
      location: vnet.location,
      tags: vnet.tags,
      properties: {
        subnets: [],
        virtualNetworkPeerings: [],
        enableDdosProtection: false,
        ...vnet.otherProperties,
        provisioningState: vnet.provisioningState,
        resourceGuid: vnet.resourceGuid,
        addressSpace: {
          addressPrefixes: mergePrefixes([...vnet.staticPrefixes, ...allocated]).map(formatPrefix),
          ...(vnet.allocations.length && {
            ipamPoolPrefixAllocations: vnet.allocations.map((a) => ({
              numberOfIpAddresses: a.numberOfIpAddresses,
              pool: { id: a.poolId },
              allocatedAddressPrefixes: mergePrefixes(a.prefixes).map(formatPrefix),
            })),
          }),
        },
      },
    }
  }

  const releaseAll = (vnet: VirtualNetwork, keep: (allocation: VnetPoolAllocation) => boolean = () => false) => {
    for (const allocation of vnet.allocations.filter((a) => !keep(a))) {
      const pool = net.pools.get(key(allocation.poolId))
      pool?.space.release(allocation.prefixes)
      pool?.associations.delete(key(vnet.id))
    }
  }

  const vnetPath = `${RG}/providers/Microsoft.Network/virtualNetworks/:vnet`

  app.put<{ Params: Params; Body: Body }>(vnetPath, async (request, reply) => {
    const id = resourceId(request)
    const who = caller(request)
    authorize(state, who, 'Microsoft.Network/virtualNetworks/write', id)
    requireGroup(state, request.params)
    if (!NAME.test(request.params.vnet))
      throw new ArmError(400, 'InvalidResourceName', `Resource name ${request.params.vnet} is invalid.`)
    const body = request.body ?? {}
    if (!body.location)
      throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.')
    const {
      addressSpace,
      provisioningState: _state,
      resourceGuid: _guid,
      ...otherProperties
    } = (body.properties ?? {}) as {
      addressSpace?: { addressPrefixes?: unknown; ipamPoolPrefixAllocations?: unknown }
      [property: string]: unknown
    }
    const staticPrefixes =
      addressSpace?.addressPrefixes === undefined
        ? []
        : prefixes(addressSpace.addressPrefixes, 'addressSpace.addressPrefixes')
    const requested = (
      Array.isArray(addressSpace?.ipamPoolPrefixAllocations) ? addressSpace.ipamPoolPrefixAllocations : []
    ) as {
      numberOfIpAddresses?: unknown
      pool?: { id?: unknown }
      id?: unknown
    }[]
    if (staticPrefixes.length && requested.length) {
      throw new ArmError(
        400,
        'CannotMixAddressPrefixAndPoolInPayload',
        'Address prefixes and IPAM pool allocations cannot be specified together in the address space of a virtual network.',
      )
    }
    const asked = requested.map((allocation) => {
      const poolId = text(allocation.pool?.id, text(allocation.id))
      const count = text(allocation.numberOfIpAddresses, '')
      if (!/^[1-9][0-9]{0,38}$/.test(count)) {
        throw new ArmError(
          400,
          'InvalidRequestFormat',
          `numberOfIpAddresses must be a positive whole number as a string (got '${count}').`,
        )
      }
      const pool = net.pools.get(key(poolId))
      if (!pool) {
        throw new ArmError(
          400,
          'IpamApiCallFailed',
          `Ipam API call failed with status NotFound with error message Pool with ARM ID ${poolId} not found., please check the parameters and retry.`,
        )
      }
      return { pool, poolId: pool.id, count }
    })
    if (new Set(asked.map((a) => key(a.poolId))).size !== asked.length) {
      throw new ArmError(
        400,
        'CannotHaveDuplicatePoolIds',
        'The same IPAM pool cannot be referenced more than once in the address space of a virtual network.',
      )
    }
    if (new Set(asked.map((a) => a.pool.space.family)).size !== asked.length) {
      throw new ArmError(
        400,
        'OnlyOneIpamPoolPerIpTypeAllowed',
        'Invalid IPAM pool allocation: only one association of each IP type is allowed.',
      )
    }
    const subnets = Array.isArray(otherProperties['subnets']) ? (otherProperties['subnets'] as SubnetInput[]) : []
    for (const subnet of subnets) {
      for (const allocation of subnet.properties?.ipamPoolPrefixAllocations ?? []) {
        const poolId = text(allocation.pool?.id, text(allocation.id))
        if (!asked.some((a) => key(a.poolId) === key(poolId))) {
          throw new ArmError(
            400,
            'SubnetPoolsMustBeSubsetOfVnetPools',
            `Subnet ${text(subnet.name)} draws on pool ${poolId}, which is not one of the pools of virtual network ${request.params.vnet}.`,
          )
        }
      }
    }
    const subnetPrefixes = subnets.map((subnet) => staticSubnetPrefixes(id, subnet))
    for (const { poolId } of asked) {
      authorizeLinked(state, who, 'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action', poolId)
    }
    const vnetSubscription = request.params.sub.toLowerCase()
    for (const { pool } of asked) {
      const managerSubscription = /^\/subscriptions\/([^/]+)/i.exec(pool.networkManagerId)?.[1]?.toLowerCase() ?? ''
      const crossTenant =
        state.subscriptions.get(managerSubscription)?.tenantId !== state.subscriptions.get(vnetSubscription)?.tenantId
      if (crossTenant && !scopeConnected(state, pool.networkManagerId, vnetSubscription)) {
        throw new ArmError(
          400,
          'SubscriptionNotInNetworkManagerScope',
          `Subscription '${vnetSubscription}' is not in the scope of network manager '${pool.networkManagerId}', so it cannot use pool ${pool.id}. Connect it across tenants: a scope connection on the network manager and a network manager connection on the subscription.`,
        )
      }
    }

    const existing = net.vnets.get(key(id))
    const unchanged = (a: VnetPoolAllocation) =>
      asked.some((b) => key(b.poolId) === key(a.poolId) && b.count === a.numberOfIpAddresses)
    // Allocate what is new before giving anything back, so a failure leaves the VNet as it was.
    const fresh: VnetPoolAllocation[] = []
    try {
      for (const { pool, poolId, count } of asked) {
        const kept = existing?.allocations.find((a) => key(a.poolId) === key(poolId) && a.numberOfIpAddresses === count)
        if (kept) continue
        try {
          fresh.push({ poolId, numberOfIpAddresses: count, prefixes: pool.space.allocate(BigInt(count)) })
        } catch (err) {
          if (!(err instanceof ExhaustedError)) throw err
          throw new ArmError(
            400,
            'IpamPoolExhausted',
            `IPAM pool ${poolId} cannot provide ${count} addresses: only ${err.available} are free in blocks that fit. Ask for fewer addresses or use another pool.`,
          )
        }
      }
    } catch (err) {
      for (const allocation of fresh) net.pools.get(key(allocation.poolId))?.space.release(allocation.prefixes)
      throw err
    }
    const finalAllocations = [...(existing?.allocations.filter(unchanged) ?? []), ...fresh]
    let carved: Record<string, unknown>[]
    try {
      // Static subnets must fit the final space, so "associating" a VNet with a pool cannot strand them.
      const space = mergePrefixes([...staticPrefixes, ...finalAllocations.flatMap((a) => a.prefixes)])
      for (const [index, subnet] of subnets.entries()) {
        if (subnetPrefixes[index]!.some((p) => !space.some((q) => contains(q, p)))) {
          throw new ArmError(
            400,
            'NetcfgSubnetRangeOutsideVnet',
            `Subnet '${text(subnet.name)}' is not valid because its IP address range is outside the IP address range of virtual network '${request.params.vnet}'.`,
          )
        }
      }
      carved = carveSubnets(id, subnets, finalAllocations)
    } catch (err) {
      for (const allocation of fresh) net.pools.get(key(allocation.poolId))?.space.release(allocation.prefixes)
      throw err
    }
    if (subnets.length) otherProperties['subnets'] = carved
    if (existing) releaseAll(existing, unchanged)
    const now = state.now()
    const allocations = finalAllocations
    for (const allocation of fresh) {
      net.pools
        .get(key(allocation.poolId))!
        .associations.set(key(id), { resourceId: id, prefixes: allocation.prefixes, createdAt: now })
    }
    const vnet: VirtualNetwork = {
      id: existing?.id ?? id,
      name: request.params.vnet,
      location: body.location,
      tags: body.tags ?? {},
      etag: `W/"${randomUUID()}"`,
      resourceGuid: existing?.resourceGuid ?? randomUUID(),
      provisioningState: 'Updating',
      staticPrefixes,
      allocations,
      otherProperties,
    }
    net.vnets.set(key(id), vnet)
    asyncHeaders(
      reply,
      request.params.sub.toLowerCase(),
      body.location,
      (operation) => {
        // A failed deployment holds nothing: what this PUT took goes back to the pools.
        if (operation.error) {
          for (const allocation of fresh) {
            const pool = net.pools.get(key(allocation.poolId))
            pool?.space.release(allocation.prefixes)
            pool?.associations.delete(key(id))
          }
          vnet.allocations = vnet.allocations.filter((a) => !fresh.includes(a))
        }
        vnet.provisioningState = operation.error ? 'Failed' : 'Succeeded'
        vnet.etag = `W/"${randomUUID()}"`
      },
      false,
    )
    return reply.code(existing ? 200 : 201).send(vnetBody(vnet))
  })

  app.get<{ Params: Params }>(vnetPath, async (request) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/virtualNetworks/read')
    settle()
    const vnet = net.vnets.get(key(id))
    if (!vnet) throw resourceNotFound('Microsoft.Network/virtualNetworks', request.params.vnet, request.params.rg)
    return vnetBody(vnet)
  })

  app.get<{ Params: Params }>(`${RG}/providers/Microsoft.Network/virtualNetworks`, async (request) => {
    const scope = resourceId(request)
    authorize(state, caller(request), 'Microsoft.Network/virtualNetworks/read', scope)
    settle()
    const prefix = `${key(scope)}/`
    return { value: [...net.vnets.entries()].filter(([id]) => id.startsWith(prefix)).map(([, vnet]) => vnetBody(vnet)) }
  })

  app.delete<{ Params: Params }>(vnetPath, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/virtualNetworks/delete')
    const vnet = net.vnets.get(key(id))
    if (!vnet) return reply.code(204).send()
    vnet.provisioningState = 'Deleting'
    asyncHeaders(
      reply,
      request.params.sub.toLowerCase(),
      vnet.location,
      (operation) => {
        if (operation.error) {
          vnet.provisioningState = 'Failed'
          return
        }
        releaseAll(vnet)
        net.vnets.delete(key(id))
      },
      true,
    )
    return reply.code(202).send()
  })

  // ---- cross-tenant connections ----
  const scopeConnectionBody = (id: string) => {
    const c = net.scopeConnections.get(key(id))!
    const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(c.resourceId)?.[1] ?? ''
    return {
      id: c.id,
      name: c.id.split('/').at(-1),
      type: 'Microsoft.Network/networkManagers/scopeConnections',
      properties: {
        tenantId: c.tenantId,
        resourceId: c.resourceId,
        description: c.description,
        connectionState: scopeConnected(state, c.networkManagerId, subscriptionId) ? 'Connected' : 'Pending',
      },
    }
  }

  app.put<{ Params: Params & { name: string }; Body: Body }>(`${NM}/scopeConnections/:name`, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/scopeConnections/write')
    const managerId = id.slice(0, id.toLowerCase().indexOf('/scopeconnections/'))
    if (!net.networkManagers.has(key(managerId)))
      throw resourceNotFound('Microsoft.Network/networkManagers', request.params.nm, request.params.rg)
    const properties = request.body?.properties ?? {}
    const tenantId = text(properties['tenantId']).toLowerCase()
    const target = text(properties['resourceId'])
    if (!state.tenants.has(tenantId) || !/^\/subscriptions\/[0-9a-f-]{36}$/i.test(target)) {
      throw new ArmError(
        400,
        'InvalidRequestFormat',
        'properties.tenantId must be a tenant id and properties.resourceId a subscription (/subscriptions/{id}).',
      )
    }
    const existed = net.scopeConnections.has(key(id))
    net.scopeConnections.set(key(id), {
      id,
      networkManagerId: managerId,
      tenantId,
      resourceId: target,
      description: text(properties['description']),
    })
    return reply.code(existed ? 200 : 201).send(scopeConnectionBody(id))
  })

  app.get<{ Params: Params & { name: string } }>(`${NM}/scopeConnections/:name`, async (request) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/scopeConnections/read')
    if (!net.scopeConnections.has(key(id)))
      throw resourceNotFound(
        'Microsoft.Network/networkManagers/scopeConnections',
        `${request.params.nm}/${request.params.name}`,
        request.params.rg,
      )
    return scopeConnectionBody(id)
  })

  const managerConnectionBody = (id: string) => {
    const c = net.managerConnections.get(key(id))!
    return {
      id: c.id,
      name: c.id.split('/').at(-1),
      type: 'Microsoft.Network/networkManagerConnections',
      properties: {
        networkManagerId: c.networkManagerId,
        description: c.description,
        connectionState: scopeConnected(state, c.networkManagerId, c.subscriptionId) ? 'Connected' : 'Pending',
      },
    }
  }

  const connectionPath = '/subscriptions/:sub/providers/Microsoft.Network/networkManagerConnections/:name'
  app.put<{ Params: { sub: string; name: string }; Body: Body }>(connectionPath, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagerConnections/write')
    const networkManagerId = text(request.body?.properties?.['networkManagerId'])
    if (!/\/providers\/Microsoft\.Network\/networkManagers\/[^/]+$/i.test(networkManagerId)) {
      throw new ArmError(
        400,
        'InvalidRequestFormat',
        'properties.networkManagerId must be the resource id of a network manager.',
      )
    }
    const existed = net.managerConnections.has(key(id))
    net.managerConnections.set(key(id), {
      id,
      subscriptionId: request.params.sub.toLowerCase(),
      networkManagerId,
      description: text(request.body?.properties?.['description']),
    })
    return reply.code(existed ? 200 : 201).send(managerConnectionBody(id))
  })

  app.get<{ Params: { sub: string; name: string } }>(connectionPath, async (request) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagerConnections/read')
    if (!net.managerConnections.has(key(id)))
      throw new ArmError(
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.Network/networkManagerConnections/${request.params.name}' was not found.`,
        { 'x-ms-failure-cause': 'gateway' },
      )
    return managerConnectionBody(id)
  })

  // Subscription Network Manager Connections - List.
  app.get<{ Params: { sub: string } }>(
    '/subscriptions/:sub/providers/Microsoft.Network/networkManagerConnections',
    async (request) => {
      can(request, 'Microsoft.Network/networkManagerConnections/read')
      const subscriptionId = request.params.sub.toLowerCase()
      const value = [...net.managerConnections.values()]
        .filter((c) => c.subscriptionId === subscriptionId)
        .map((c) => managerConnectionBody(c.id))
      return { value }
    },
  )

  // ---- network groups and their static members ----
  const groupOf = (request: FastifyRequest<{ Params: Params & { group: string } }>) => {
    const path = resourceId(request)
    const id = path.slice(0, path.toLowerCase().indexOf('/networkgroups/')) + `/networkGroups/${request.params.group}`
    const group = net.networkGroups.get(key(id))
    if (!group)
      throw resourceNotFound(
        'Microsoft.Network/networkManagers/networkGroups',
        `${request.params.nm}/${request.params.group}`,
        request.params.rg,
      )
    return group
  }

  app.put<{ Params: Params & { group: string }; Body: Body }>(`${NM}/networkGroups/:group`, async (request, reply) => {
    const id = resourceId(request)
    can(request, 'Microsoft.Network/networkManagers/networkGroups/write')
    const managerId = id.slice(0, id.toLowerCase().indexOf('/networkgroups/'))
    if (!net.networkManagers.has(key(managerId)))
      throw resourceNotFound('Microsoft.Network/networkManagers', request.params.nm, request.params.rg)
    const existing = net.networkGroups.get(key(id))
    const group = existing ?? {
      id,
      networkManagerId: managerId,
      name: request.params.group,
      description: '',
      members: new Map(),
    }
    group.description = text(request.body?.properties?.['description'], group.description)
    net.networkGroups.set(key(id), group)
    return reply.code(existing ? 200 : 201).send({
      id,
      name: group.name,
      type: 'Microsoft.Network/networkManagers/networkGroups',
      properties: { description: group.description, memberType: 'VirtualNetwork', provisioningState: 'Succeeded' },
    })
  })

  const memberBody = (group: { id: string }, member: { name: string; resourceId: string }) => ({
    id: `${group.id}/staticMembers/${member.name}`,
    name: member.name,
    type: 'Microsoft.Network/networkManagers/networkGroups/staticMembers',
    properties: {
      resourceId: member.resourceId,
      region: net.vnets.get(key(member.resourceId))?.location ?? '',
      provisioningState: 'Succeeded',
    },
  })

  app.put<{ Params: Params & { group: string; member: string }; Body: Body }>(
    `${NM}/networkGroups/:group/staticMembers/:member`,
    async (request, reply) => {
      can(request, 'Microsoft.Network/networkManagers/networkGroups/staticMembers/write')
      const group = groupOf(request)
      const target = text(request.body?.properties?.['resourceId'])
      if (!net.vnets.has(key(target))) {
        throw new ArmError(
          400,
          'InvalidResourceId',
          `properties.resourceId '${target}' is not an existing virtual network.`,
        )
      }
      const memberSubscription = /^\/subscriptions\/([^/]+)/i.exec(target)?.[1]?.toLowerCase() ?? ''
      const managerSubscription = /^\/subscriptions\/([^/]+)/i.exec(group.networkManagerId)?.[1]?.toLowerCase() ?? ''
      const crossTenant =
        state.subscriptions.get(memberSubscription)?.tenantId !== state.subscriptions.get(managerSubscription)?.tenantId
      if (crossTenant && !scopeConnected(state, group.networkManagerId, memberSubscription)) {
        throw new ArmError(
          400,
          'SubscriptionNotInNetworkManagerScope',
          `Virtual network ${target} is in subscription '${memberSubscription}', which is not connected to network manager '${group.networkManagerId}'.`,
        )
      }
      const existed = group.members.has(request.params.member.toLowerCase())
      const member = {
        id: `${group.id}/staticMembers/${request.params.member}`,
        name: request.params.member,
        resourceId: target,
      }
      group.members.set(request.params.member.toLowerCase(), member)
      return reply.code(existed ? 200 : 201).send(memberBody(group, member))
    },
  )

  app.get<{ Params: Params & { group: string; member: string } }>(
    `${NM}/networkGroups/:group/staticMembers/:member`,
    async (request) => {
      can(request, 'Microsoft.Network/networkManagers/networkGroups/staticMembers/read')
      const group = groupOf(request)
      const member = group.members.get(request.params.member.toLowerCase())
      if (!member)
        throw resourceNotFound(
          'Microsoft.Network/networkManagers/networkGroups/staticMembers',
          request.params.member,
          request.params.rg,
        )
      return memberBody(group, member)
    },
  )

  app.get<{ Params: Params & { group: string } }>(`${NM}/networkGroups/:group/staticMembers`, async (request) => {
    can(request, 'Microsoft.Network/networkManagers/networkGroups/staticMembers/read')
    const group = groupOf(request)
    return { value: [...group.members.values()].map((member) => memberBody(group, member)) }
  })

  app.delete<{ Params: Params & { group: string; member: string } }>(
    `${NM}/networkGroups/:group/staticMembers/:member`,
    async (request, reply) => {
      can(request, 'Microsoft.Network/networkManagers/networkGroups/staticMembers/delete')
      const group = groupOf(request)
      return reply.code(group.members.delete(request.params.member.toLowerCase()) ? 200 : 204).send()
    },
  )
}
