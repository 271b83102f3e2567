import { randomUUID } from 'node:crypto'
import type { AddressSpace, Prefix } from './allocator.ts'

// Microsoft.Network's part of the emulated world. Resource ids are kept as given and looked up
// lower-cased, as ARM treats them case-insensitively.

export interface NetworkManager {
  id: string
  name: string
  location: string
  tags: Record<string, string>
  description: string
}

export interface PoolAssociation {
  resourceId: string
  prefixes: Prefix[]
  createdAt: Date
}

/** Space held in a pool without a resource (on-premises ranges, reservations). */
export interface StaticCidr {
  id: string
  name: string
  description: string
  prefixes: Prefix[]
  numberOfIPAddressesToAllocate: string
}

export interface IpamPool {
  id: string
  name: string
  networkManagerId: string
  location: string
  tags: Record<string, string>
  description: string
  displayName: string
  parentPoolName: string
  addressPrefixes: Prefix[]
  space: AddressSpace
  depth: number
  /** Child pools hold space in their parent, as allocations do. */
  children: Set<string>
  associations: Map<string, PoolAssociation>
  staticCidrs: Map<string, StaticCidr>
}

export interface VnetPoolAllocation {
  poolId: string
  numberOfIpAddresses: string
  prefixes: Prefix[]
}

export interface VirtualNetwork {
  id: string
  name: string
  location: string
  tags: Record<string, string>
  etag: string
  resourceGuid: string
  provisioningState: 'Updating' | 'Succeeded' | 'Deleting' | 'Failed'
  staticPrefixes: Prefix[]
  allocations: VnetPoolAllocation[]
  /** Properties the emulator does not model (DNS, peerings, subnets...), kept as the caller sent them. */
  otherProperties: Record<string, unknown>
}

/** Management side of a cross-tenant connection: the network manager offers to manage a subscription. */
export interface ScopeConnection {
  id: string
  networkManagerId: string
  tenantId: string
  resourceId: string
  description: string
}

/** Managed side: the subscription accepts management by a network manager of another tenant. */
export interface ManagerConnection {
  id: string
  subscriptionId: string
  networkManagerId: string
  description: string
}

export interface NetworkGroup {
  id: string
  networkManagerId: string
  name: string
  description: string
  /** Static members by member id: the resource id of each VNet. */
  members: Map<string, { id: string; name: string; resourceId: string }>
}

export interface AsyncOperation {
  id: string
  subscriptionId: string
  location: string
  doneAt: number
  /** Runs once, when a request first finds the operation due (so an injected failure is known by then). */
  complete: (operation: AsyncOperation) => void
  completed: boolean
  error?: { code: string; message: string }
}

export class NetworkState {
  readonly networkManagers = new Map<string, NetworkManager>()
  readonly pools = new Map<string, IpamPool>()
  readonly vnets = new Map<string, VirtualNetwork>()
  readonly operations = new Map<string, AsyncOperation>()
  readonly scopeConnections = new Map<string, ScopeConnection>()
  readonly managerConnections = new Map<string, ManagerConnection>()
  readonly networkGroups = new Map<string, NetworkGroup>()

  newOperation(
    subscriptionId: string,
    location: string,
    doneAt: number,
    complete: (operation: AsyncOperation) => void,
  ): AsyncOperation {
    const operation = { id: randomUUID(), subscriptionId, location, doneAt, complete, completed: false }
    this.operations.set(operation.id, operation)
    return operation
  }
}

export const key = (id: string) => id.toLowerCase().replace(/\/+$/, '')
