import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ProblemError } from '../services/errors.ts'

export interface SecurityOptions {
  /** Requests per minute per caller (authenticated: per object id; otherwise per address). */
  rateLimitPerMinute: number
  /** Origins allowed to call from a browser; none means no CORS headers at all. */
  corsOrigins: readonly string[]
}

// Orchestrators' probes and Prometheus' scrapes are not callers to throttle.
const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

/** Security headers, per-caller rate limiting, and CORS only where configured. */
export default fp<SecurityOptions>(
  async function security(app: FastifyInstance, { rateLimitPerMinute, corsOrigins }) {
    await app.register(helmet, { global: true })
    if (corsOrigins.length) await app.register(cors, { origin: [...corsOrigins], credentials: false })
    await app.register(rateLimit, {
      global: true,
      max: rateLimitPerMinute,
      timeWindow: 60_000,
      // After the routes' onRequest authentication, so an authenticated caller is counted by who it is.
      hook: 'preHandler',
      keyGenerator: (request) => (request.principal?.oid ? `oid:${request.principal.oid}` : `ip:${request.ip}`),
      allowList: (request) => PROBES.has(request.url.split('?')[0] ?? ''),
      errorResponseBuilder: (_request, context) =>
        new ProblemError(
          429,
          'rate-limited',
          'Too many requests',
          `At most ${context.max} requests per minute per caller; try again in ${context.after}.`,
          { retryAfterSeconds: Math.ceil(context.ttl / 1000) },
        ),
    })
  },
  { name: 'security' },
)
