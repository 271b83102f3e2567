import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { AuthenticationError, type CallerAuthenticator, type Principal } from '../ms-auth/caller-identity.ts'
import { ProblemError } from '../services/errors.ts'

export type Role = 'Requester' | 'Reader' | 'Admin'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by `app.requireRole(...)` before the handler runs. */
    principal: Principal
  }
  interface FastifyInstance {
    /** A preHandler: the caller must present a valid Entra token carrying one of these app roles (Admin always may). */
    requireRole(...roles: Role[]): preHandlerAsyncHookHandler
  }
}

export interface AuthenticationOptions {
  authenticator: CallerAuthenticator
}

/** Every /v1 route authenticates its caller; there is no switch that turns this off. */
export default fp<AuthenticationOptions>(
  async function authentication(app: FastifyInstance, { authenticator }) {
    app.decorateRequest('principal', undefined as unknown as Principal)
    app.decorate('requireRole', (...roles: Role[]) => {
      const allowed = new Set<string>([...roles, 'Admin'])
      return async function requireRole(request: FastifyRequest) {
        let principal: Principal
        try {
          principal = await authenticator.authenticate(request.headers.authorization)
        } catch (err) {
          if (!(err instanceof AuthenticationError)) throw err
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
    })
  },
  { name: 'authentication' },
)
