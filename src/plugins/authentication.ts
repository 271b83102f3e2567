import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { AuthenticationError, type CallerAuthenticator, type Principal } from '../ms-auth/caller-identity.ts'
import type { Caller } from '../services/audit.ts'
import { ProblemError } from '../services/errors.ts'

export type Role = 'Requester' | 'Reader' | 'Admin'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by `app.requireRole(...)` before the handler runs. */
    principal: Principal
  }
  interface FastifyInstance {
    /** An onRequest hook (before the body is read or validated): the caller must present a valid Entra token carrying one of these app roles (Admin always may). */
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
      const allowed = new Set<string>([...roles, 'Admin'])
      return async function requireRole(request: FastifyRequest, reply: FastifyReply) {
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
    })
  },
  { name: 'authentication' },
)
