import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ArmError } from '../common/errors.ts'
import type { TokenIssuer } from '../entra/tokens.ts'
import type { EmulatorState } from '../state.ts'
import { type ArmCaller, authenticate } from './auth.ts'
import { authorize } from './authorize.ts'
import { BUILT_IN_ROLES, findRole, type RoleAssignment, type RoleDefinition, scopeCovers } from './rbac.ts'

// ARM's common surface: subscriptions, resource groups, and Microsoft.Authorization (role
// definitions and assignments at any scope, and the caller's own permissions there). Resource
// providers register their own routes.

export interface ArmOptions {
  state: EmulatorState
  issuer: TokenIssuer
}

declare module 'fastify' {
  interface FastifyRequest {
    armCaller?: ArmCaller
  }
}

export function caller(request: FastifyRequest): ArmCaller {
  if (!request.armCaller) throw new ArmError(401, 'AuthenticationFailed', 'Authentication failed.')
  return request.armCaller
}

const AUTHORIZATION_PATH =
  /^(?<scope>\/subscriptions\/[^/]+(?:\/.*?)?)\/providers\/Microsoft\.Authorization\/(?<kind>roleAssignments|roleDefinitions)(?:\/(?<name>[^/]+))?$/i

const PERMISSIONS_PATH =
  /^(?<scope>\/subscriptions\/[^/]+(?:\/.*?)?)\/providers\/Microsoft\.Authorization\/permissions$/i

/** The scopes Permissions - List answers for: a subscription, a resource group, or a resource (any depth) in one. */
const PERMISSIONS_SCOPE =
  /^\/subscriptions\/(?<sub>[^/]+)(?:\/resourceGroups\/(?<rg>[^/]+)(?:\/providers\/[^/]+(?:\/[^/]+\/[^/]+)+)?)?$/i

/** ARM's front door for every resource provider: api-version, then authentication against the subscription's tenant. */
export function armFrontDoor({ state, issuer }: ArmOptions) {
  return async (request: FastifyRequest) => {
    const apiVersion = (request.query as Record<string, string | undefined>)['api-version']
    if (!apiVersion) {
      throw new ArmError(
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      )
    }
    const subscriptionId = /^\/subscriptions\/([^/?]+)/i.exec(request.url)?.[1]
    const subscription = subscriptionId ? state.subscriptions.get(subscriptionId.toLowerCase()) : undefined
    request.armCaller = await authenticate(request, issuer, state.now(), subscription?.tenantId)
    if (subscriptionId && !subscription) {
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${subscriptionId}' could not be found.`)
    }
  }
}

export async function armRoutes(app: FastifyInstance, { state }: ArmOptions) {
  const subscriptionBody = (id: string) => {
    const subscription = state.subscriptions.get(id)!
    return {
      id: `/subscriptions/${id}`,
      authorizationSource: 'RoleBased',
      managedByTenants: [],
      subscriptionId: id,
      tenantId: subscription.tenantId,
      displayName: subscription.displayName,
      state: 'Enabled',
      subscriptionPolicies: {
        locationPlacementId: 'Public_2014-09-01',
        quotaId: 'PayAsYouGo_2014-09-01',
        spendingLimit: 'Off',
      },
    }
  }

  // A caller sees the subscriptions of its tenant in which it holds any role assignment.
  app.get('/subscriptions', async (request) => {
    const { primary } = caller(request)
    const visible = [...state.subscriptions.values()].filter(
      (sub) =>
        sub.tenantId === primary.tid &&
        state.rbac.assignments.some(
          (a) => a.principalId === primary.oid && scopeCovers(`/subscriptions/${sub.id}`, a.scope),
        ),
    )
    return { value: visible.map((sub) => subscriptionBody(sub.id)), count: { type: 'Total', value: visible.length } }
  })

  app.get<{ Params: { sub: string } }>('/subscriptions/:sub', async (request) => {
    const id = request.params.sub.toLowerCase()
    authorize(state, caller(request), 'Microsoft.Resources/subscriptions/read', `/subscriptions/${id}`)
    return subscriptionBody(id)
  })

  const groupBody = (sub: string, name: string) => {
    const group = state.resourceGroup(sub, name)!
    return {
      id: `/subscriptions/${sub}/resourceGroups/${group.name}`,
      name: group.name,
      type: 'Microsoft.Resources/resourceGroups',
      location: group.location,
      tags: group.tags,
      properties: { provisioningState: 'Succeeded' },
    }
  }

  for (const segment of ['resourceGroups', 'resourcegroups']) {
    app.get<{ Params: { sub: string; rg: string } }>(`/subscriptions/:sub/${segment}/:rg`, async (request) => {
      const { sub, rg } = request.params
      authorize(
        state,
        caller(request),
        'Microsoft.Resources/subscriptions/resourceGroups/read',
        `/subscriptions/${sub}/resourceGroups/${rg}`,
      )
      if (!state.resourceGroup(sub, rg)) {
        throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`)
      }
      return groupBody(sub, rg)
    })
    app.put<{ Params: { sub: string; rg: string }; Body: { location?: string; tags?: Record<string, string> } }>(
      `/subscriptions/:sub/${segment}/:rg`,
      async (request, reply) => {
        const { sub, rg } = request.params
        authorize(
          state,
          caller(request),
          'Microsoft.Resources/subscriptions/resourceGroups/write',
          `/subscriptions/${sub}/resourceGroups/${rg}`,
        )
        if (!request.body?.location) {
          throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.')
        }
        const existed = state.resourceGroup(sub, rg)
        state.putResourceGroup({
          subscriptionId: sub,
          name: existed?.name ?? rg,
          location: request.body.location,
          tags: request.body.tags ?? {},
        })
        return reply.code(existed ? 200 : 201).send(groupBody(sub, rg))
      },
    )
  }

  const definitionBody = (subscriptionId: string, role: RoleDefinition) => ({
    properties: {
      roleName: role.roleName,
      type: 'BuiltInRole',
      description: role.description,
      assignableScopes: ['/'],
      permissions: [{ actions: role.actions, notActions: role.notActions, dataActions: [], notDataActions: [] }],
      createdOn: '2015-02-02T21:55:09.8806423Z',
      updatedOn: '2024-05-01T00:00:00.0000000Z',
      createdBy: null,
      updatedBy: null,
    },
    id: `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${role.id}`,
    type: 'Microsoft.Authorization/roleDefinitions',
    name: role.id,
  })

  const assignmentBody = (assignment: RoleAssignment) => ({
    properties: {
      roleDefinitionId: assignment.roleDefinitionId,
      principalId: assignment.principalId,
      principalType: assignment.principalType,
      scope: assignment.scope,
      condition: null,
      conditionVersion: null,
      createdOn: assignment.createdOn.toISOString(),
      updatedOn: assignment.createdOn.toISOString(),
      createdBy: null,
      updatedBy: null,
      delegatedManagedIdentityResourceId: null,
      description: null,
    },
    id: `${assignment.scope}/providers/Microsoft.Authorization/roleAssignments/${assignment.name}`,
    type: 'Microsoft.Authorization/roleAssignments',
    name: assignment.name,
  })

  // Permissions - List (For Resource Group / For Resource): what the caller itself may do at a scope,
  // one entry per role assignment of its own (in its token's tenant) made at the scope or above. Any
  // authenticated caller may list its own permissions, so no role is needed for it.
  const permissionsAt = (who: ArmCaller, scope: string) => {
    const { sub = '', rg } = PERMISSIONS_SCOPE.exec(scope)?.groups ?? {}
    if (rg !== undefined && !state.resourceGroup(sub, rg)) {
      throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`)
    }
    const value = state.rbac.assignments
      .filter((a) => a.principalId === who.primary.oid && a.tenantId === who.primary.tid && scopeCovers(a.scope, scope))
      .flatMap((a) => findRole(a.roleDefinitionId) ?? [])
      .map((role) => ({ actions: role.actions, notActions: role.notActions, dataActions: [], notDataActions: [] }))
    return { value, nextLink: null }
  }

  // Microsoft.Authorization lives under any scope, so it is matched here rather than by route templates.
  app.all('/subscriptions/*', async (request, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? ''
    // An empty parentResourcePath leaves '//' in a Permissions - List For Resource path, which ARM ignores.
    const permissions = PERMISSIONS_PATH.exec(path.replace(/\/{2,}/g, '/'))?.groups?.['scope']
    if (permissions !== undefined && PERMISSIONS_SCOPE.test(permissions)) {
      if (request.method !== 'GET') {
        throw new ArmError(
          405,
          'MethodNotAllowed',
          `The requested resource does not support http method '${request.method}'.`,
        )
      }
      return permissionsAt(caller(request), permissions)
    }
    const match = AUTHORIZATION_PATH.exec(path)
    if (!match?.groups) {
      return reply.code(501).send({
        error: {
          code: 'NotImplemented',
          message: `The emulator does not implement ${request.method} ${path} on its arm endpoint.`,
        },
      })
    }
    const { scope = '', kind = '', name } = match.groups
    const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(scope)?.[1] ?? ''
    const who = caller(request)
    const filter = (request.query as Record<string, string | undefined>)['$filter'] ?? ''

    if (kind.toLowerCase() === 'roledefinitions') {
      if (request.method !== 'GET')
        throw new ArmError(405, 'MethodNotAllowed', 'Built-in role definitions cannot be changed.')
      authorize(state, who, 'Microsoft.Authorization/roleDefinitions/read', scope)
      if (name) {
        const role = findRole(name)
        if (!role)
          throw new ArmError(
            404,
            'RoleDefinitionDoesNotExist',
            `The specified role definition with ID '${name}' does not exist.`,
          )
        return definitionBody(subscriptionId, role)
      }
      const roleName = /roleName\s+eq\s+'([^']*)'/i.exec(filter)?.[1]
      const roles = roleName
        ? BUILT_IN_ROLES.filter((role) => role.roleName.toLowerCase() === roleName.toLowerCase())
        : BUILT_IN_ROLES
      return { value: roles.map((role) => definitionBody(subscriptionId, role)) }
    }

    const tenantId = state.subscriptions.get(subscriptionId)?.tenantId ?? ''
    if (!name) {
      if (request.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'Use a role assignment name.')
      authorize(state, who, 'Microsoft.Authorization/roleAssignments/read', scope)
      const principal = /(?:principalId\s+eq|assignedTo\()\s*'([^']*)'/i.exec(filter)?.[1]
      const atScope = /atScope\(\)/i.test(filter)
      const listed = state.rbac.assignments.filter(
        (a) =>
          a.tenantId === tenantId &&
          (atScope ? scopeCovers(a.scope, scope) : scopeCovers(a.scope, scope) || scopeCovers(scope, a.scope)) &&
          (!principal || a.principalId === principal),
      )
      return { value: listed.map(assignmentBody) }
    }

    const existing = state.rbac.assignments.find(
      (a) => a.name === name && a.scope.toLowerCase() === scope.toLowerCase(),
    )
    if (request.method === 'GET') {
      authorize(state, who, 'Microsoft.Authorization/roleAssignments/read', scope)
      if (!existing) throw new ArmError(404, 'RoleAssignmentNotFound', `The role assignment '${name}' is not found.`)
      return assignmentBody(existing)
    }
    if (request.method === 'DELETE') {
      authorize(state, who, 'Microsoft.Authorization/roleAssignments/delete', scope)
      if (!existing) return reply.code(204).send()
      state.rbac.assignments.splice(state.rbac.assignments.indexOf(existing), 1)
      return assignmentBody(existing)
    }
    if (request.method !== 'PUT')
      throw new ArmError(405, 'MethodNotAllowed', `${request.method} is not supported here.`)
    authorize(state, who, 'Microsoft.Authorization/roleAssignments/write', scope)
    const properties = (
      request.body as
        { properties?: { roleDefinitionId?: string; principalId?: string; principalType?: string } } | undefined
    )?.properties
    const role = properties?.roleDefinitionId ? findRole(properties.roleDefinitionId) : undefined
    if (!role) {
      throw new ArmError(
        400,
        'RoleDefinitionDoesNotExist',
        `The specified role definition with ID '${properties?.roleDefinitionId ?? ''}' does not exist.`,
      )
    }
    const principalId = properties?.principalId ?? ''
    if (!state.servicePrincipals.some((sp) => sp.objectId === principalId && sp.tenantId === tenantId)) {
      throw new ArmError(
        400,
        'PrincipalNotFound',
        `Principal ${principalId.replaceAll('-', '')} does not exist in the directory ${tenantId}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay.`,
      )
    }
    if (existing) return assignmentBody(existing)
    const duplicate = state.rbac.assignments.some(
      (a) =>
        a.principalId === principalId &&
        a.scope.toLowerCase() === scope.toLowerCase() &&
        findRole(a.roleDefinitionId)?.id === role.id,
    )
    if (duplicate) throw new ArmError(409, 'RoleAssignmentExists', 'The role assignment already exists.')
    const created = state.rbac.assign({
      name,
      scope,
      roleDefinitionId: `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${role.id}`,
      principalId,
      principalType: 'ServicePrincipal',
      tenantId,
    })
    return reply.code(201).send(assignmentBody(created))
  })
}
