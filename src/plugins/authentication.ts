import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  onRequestAsyncHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import { AuthenticationError, type CallerAuthenticator, type Principal } from '../ms-auth/caller-identity.ts'
import type { Caller } from '../services/audit.ts'
import { ProblemError } from '../services/errors.ts'

export type Role = 'Requester' | 'Reader' | 'Admin'

/**
 * The OpenAPI extension on each operation that authenticates its caller: the app roles it admits (Admin
 * included), the same list a 403 `role-required` answer carries as `requiredRoles`.
 */
export const REQUIRED_ROLES_EXTENSION = 'x-required-roles'

// What each hook made by requireRole admits, for the onRoute hook that publishes it.
const admittedRoles = new WeakMap<object, Role[]>()

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by `app.requireRole(...)` before the handler runs. */
    principal: Principal
  }
  interface FastifyInstance {
    /**
     * An onRequest hook (before the body is read or validated): the caller must present a valid Entra token
     * carrying one of these app roles (Admin always may). Given as a route's `onRequest` option, the roles
     * also appear in the OpenAPI document (REQUIRED_ROLES_EXTENSION).
     */
    requireRole(...roles: Role[]): onRequestAsyncHookHandler
  }
}

/** The authenticated caller with the request that carries it, as services record it. */
export function callerOf(request: FastifyRequest): Caller {
  return { ...request.principal, requestId: request.id }
}

export interface AuthenticationOptions {
  authenticator: CallerAuthenticator
}

/**
 * The RFC 6750 §3 challenge, pointing at the authority to get a token from (as ARM's does); no error
 * code when no token came at all. error_description may not carry `"` or `\`.
 */
export function bearerChallenge(authority: string, failure: AuthenticationError): string {
  const params = [`authorization_uri="${authority}"`]
  if (failure.reason !== 'missing-token') {
    const error = failure.reason === 'malformed-token' ? 'invalid_request' : 'invalid_token'
    params.push(`error="${error}"`, `error_description="${failure.message.replace(/["\\]/g, "'")}"`)
  }
  return `Bearer ${params.join(', ')}`
}

/** Every /v1 route authenticates its caller; there is no switch that turns this off. */
export default fp<AuthenticationOptions>(
  async function authentication(app: FastifyInstance, { authenticator }) {
    app.decorateRequest('principal', undefined as unknown as Principal)
    app.decorate('requireRole', (...roles: Role[]) => {
      const admitted = [...new Set<Role>([...roles, 'Admin'])]
      const allowed = new Set<string>(admitted)
      const hook = async function requireRole(request: FastifyRequest, reply: FastifyReply) {
        let principal: Principal
        try {
          principal = await authenticator.authenticate(request.headers.authorization)
        } catch (err) {
          if (!(err instanceof AuthenticationError)) throw err
          reply.header('www-authenticate', bearerChallenge(authenticator.authority, err))
          throw new ProblemError(401, 'unauthenticated', 'Authentication failed', err.message, { reason: err.reason })
        }
        request.principal = principal
        request.log = request.log.child({ caller: { oid: principal.oid, appId: principal.appId } })
        if (!principal.roles.some((role) => allowed.has(role))) {
          throw new ProblemError(
            403,
            'role-required',
            'Role required',
            `This operation needs one of the app roles ${[...allowed].join(', ')}; the token carries ${principal.roles.join(', ') || 'none'}.`,
            { requiredRoles: [...allowed] },
          )
        }
      }
      admittedRoles.set(hook, admitted)
      return hook
    })
    // Every route added after this plugin, in any plugin, states its roles in the OpenAPI document:
    // @fastify/swagger copies a route schema's `x-` keys onto its operation.
    app.addHook('onRoute', (route: RouteOptions) => {
      const hook = [route.onRequest ?? []].flat().find((candidate) => admittedRoles.has(candidate))
      if (hook) route.schema = { ...route.schema, [REQUIRED_ROLES_EXTENSION]: admittedRoles.get(hook) } as FastifySchema
    })
  },
  { name: 'authentication' },
)
