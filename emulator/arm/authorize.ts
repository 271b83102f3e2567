import { ArmError } from '../common/errors.ts'
import type { EmulatorState } from '../state.ts'
import type { ArmCaller } from './auth.ts'

// Authorization as ARM reports it: AuthorizationFailed for the caller's own scope, and
// LinkedAuthorizationFailed for a linked resource in another tenant (an IPAM pool in tenant A,
// referenced by a VNet written in tenant B), which needs an auxiliary token from that tenant.

export function authorize(state: EmulatorState, caller: ArmCaller, action: string, scope: string): void {
  if (state.rbac.isAllowed(caller.primary.oid, action, scope)) return
  throw new ArmError(
    403,
    'AuthorizationFailed',
    `The client '${caller.primary.oid}' with object id '${caller.primary.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
  )
}

export function authorizeLinked(state: EmulatorState, caller: ArmCaller, action: string, linkedScope: string): void {
  const subscriptionId = /^\/subscriptions\/([^/]+)/i.exec(linkedScope)?.[1] ?? ''
  const linkedTenant = state.subscriptions.get(subscriptionId)?.tenantId
  const identity =
    linkedTenant === caller.primary.tid ? caller.primary : linkedTenant ? caller.auxiliary.get(linkedTenant) : undefined
  if (!identity) {
    throw new ArmError(
      403,
      'LinkedAuthorizationFailed',
      `The client '${caller.primary.oid}' with object id '${caller.primary.oid}' has permission to perform action on scope; however the current tenant '${caller.primary.tid}' is not authorized to access linked subscription '${subscriptionId}'.`,
    )
  }
  if (!state.rbac.isAllowed(identity.oid, action, linkedScope)) {
    throw new ArmError(
      403,
      'LinkedAuthorizationFailed',
      `The client '${caller.primary.oid}' with object id '${caller.primary.oid}' has permission to perform action on scope; however, it does not have permission to perform action(s) '${action}' on the linked scope(s) '${linkedScope}' (respectively) or the linked scope(s) are invalid.`,
    )
  }
}
