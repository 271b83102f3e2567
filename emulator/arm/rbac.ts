import { randomUUID } from 'node:crypto'

// Azure RBAC as ARM evaluates it: a principal may perform an action on a scope when a role
// assigned to it at that scope or any scope above allows the action (actions minus notActions,
// with '*' wildcards), compared case-insensitively.

export interface RoleDefinition {
  id: string
  roleName: string
  description: string
  actions: string[]
  notActions: string[]
}

export const BUILT_IN_ROLES: RoleDefinition[] = [
  {
    id: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635',
    roleName: 'Owner',
    description: 'Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.',
    actions: ['*'],
    notActions: [],
  },
  {
    id: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
    roleName: 'Contributor',
    description: 'Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.',
    actions: ['*'],
    notActions: [
      'Microsoft.Authorization/*/Delete',
      'Microsoft.Authorization/*/Write',
      'Microsoft.Authorization/elevateAccess/Action',
    ],
  },
  {
    id: 'acdd72a7-3385-48ef-bd42-f606fba81ae7',
    roleName: 'Reader',
    description: 'View all resources, but does not allow you to make any changes.',
    actions: ['*/read'],
    notActions: [],
  },
  {
    id: '4d97b98b-1d4f-4787-a291-c67834d212e7',
    roleName: 'Network Contributor',
    description: 'Lets you manage networks, but not access to them.',
    actions: [
      'Microsoft.Authorization/*/read',
      'Microsoft.Insights/alertRules/*',
      'Microsoft.Network/*',
      'Microsoft.ResourceHealth/availabilityStatuses/read',
      'Microsoft.Resources/deployments/*',
      'Microsoft.Resources/subscriptions/resourceGroups/read',
      'Microsoft.Support/*',
    ],
    notActions: [],
  },
  {
    id: '7b3e853f-ad5d-4fb5-a7b8-56a3581c7037',
    roleName: 'IPAM Pool User',
    description: 'Lets you use IPAM pools: read them and associate resources (virtual networks) with them.',
    actions: [
      'Microsoft.Network/networkManagers/ipamPools/read',
      'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action',
      'Microsoft.Network/networkManagers/ipamPools/getPoolUsage/action',
      'Microsoft.Network/networkManagers/ipamPools/listAssociatedResources/action',
      'Microsoft.Network/networkManagers/ipamPools/staticCidrs/read',
    ],
    notActions: [],
  },
]

export interface RoleAssignment {
  name: string
  scope: string
  roleDefinitionId: string
  principalId: string
  principalType: 'ServicePrincipal' | 'User' | 'Group'
  tenantId: string
  createdOn: Date
}

export function findRole(idOrName: string): RoleDefinition | undefined {
  const key = idOrName.split('/').at(-1)?.toLowerCase()
  return BUILT_IN_ROLES.find((role) => role.id === key || role.roleName.toLowerCase() === idOrName.toLowerCase())
}

function pattern(action: string): RegExp {
  const escaped = action.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')
  return new RegExp(`^${escaped}$`, 'i')
}

export function roleAllows(role: RoleDefinition, action: string): boolean {
  return role.actions.some((a) => pattern(a).test(action)) && !role.notActions.some((a) => pattern(a).test(action))
}

/** True when `scope` is `ancestor` or lies below it (segment-wise, case-insensitive). */
export function scopeCovers(ancestor: string, scope: string): boolean {
  const a = ancestor.toLowerCase().replace(/\/+$/, '')
  const s = scope.toLowerCase().replace(/\/+$/, '')
  return a === '' || s === a || s.startsWith(`${a}/`)
}

export class Rbac {
  readonly assignments: RoleAssignment[] = []

  assign(assignment: Omit<RoleAssignment, 'name' | 'createdOn'> & { name?: string; createdOn?: Date }): RoleAssignment {
    const created: RoleAssignment = {
      ...assignment,
      name: assignment.name ?? randomUUID(),
      createdOn: assignment.createdOn ?? new Date(),
    }
    this.assignments.push(created)
    return created
  }

  isAllowed(principalId: string, action: string, scope: string): boolean {
    return this.assignments.some((assignment) => {
      if (assignment.principalId !== principalId || !scopeCovers(assignment.scope, scope)) return false
      const role = findRole(assignment.roleDefinitionId)
      return role !== undefined && roleAllows(role, action)
    })
  }
}
