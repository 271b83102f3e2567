import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { HealthService } from '../../services/health.ts'

const CheckSchema = Type.Object({
  status: Type.Enum(['up', 'down', 'unknown']),
  detail: Type.Optional(Type.String()),
  latencyMs: Type.Optional(Type.Integer()),
  pending: Type.Optional(Type.Array(Type.String())),
})

export const LivenessSchema = Type.Object({ status: Type.Literal('ok') }, { $id: 'Liveness' })

export const ReadinessSchema = Type.Object(
  {
    status: Type.Enum(['ready', 'not-ready']),
    checks: Type.Object({ database: CheckSchema, migrations: CheckSchema }),
  },
  { $id: 'Readiness' },
)

export interface HealthRoutesOptions {
  health: HealthService
}

/** Probes for orchestrators: no authentication, no side effects. */
const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { health }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        operationId: 'getLiveness',
        summary: 'The process is alive',
        security: [],
        response: { 200: LivenessSchema },
      },
    },
    async () => ({ status: 'ok' as const }),
  )

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        operationId: 'getReadiness',
        summary: 'The database is reachable and every migration is applied',
        security: [],
        response: { 200: ReadinessSchema, 503: ReadinessSchema },
      },
    },
    async (_request, reply) => {
      const { ready, checks } = await health.readiness()
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not-ready', checks })
    },
  )
}

export default healthRoutes
