import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { AuditService } from '../../../services/audit.ts'
import { GuidSchema } from '../schemas.ts'

export const AuditEventSchema = Type.Object(
  {
    id: Type.String(),
    at: Type.String({ format: 'date-time' }),
    actorOid: Type.Union([Type.String(), Type.Null()]),
    actorAppId: Type.Union([Type.String(), Type.Null()]),
    action: Type.String({ description: 'e.g. vnet.deploy, vnet.release, grant.create, tenant.managed.put, arm.write' }),
    decision: Type.Union([Type.Enum(['allowed', 'denied']), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    grantId: Type.Union([Type.String(), Type.Null()]),
    target: Type.Union([Type.String(), Type.Null()]),
    requestId: Type.Union([Type.String(), Type.Null()]),
    operationId: Type.Union([Type.String(), Type.Null()]),
    detail: Type.Unknown(),
  },
  { $id: 'AuditEvent' },
)

export const AuditListSchema = Type.Object({ value: Type.Array(Type.Ref('AuditEvent')) }, { $id: 'AuditList' })

export const AUDIT_SCHEMAS = [AuditEventSchema, AuditListSchema]

/** The audit trail, newest first, for Admins and SREs. */
const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService }> = async (app, { audit }) => {
  app.get(
    '/v1/audit',
    {
      onRequest: app.requireRole('Reader'),
      schema: {
        tags: ['audit'],
        operationId: 'listAuditEvents',
        summary: 'Decisions, admin changes and ARM writes, newest first',
        security: [{ entra: [] }],
        querystring: Type.Object(
          {
            action: Type.Optional(Type.String({ pattern: '^[a-z][a-z.]{0,63}$' })),
            actorOid: Type.Optional(GuidSchema),
            operationId: Type.Optional(GuidSchema),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Ref('AuditList'),
          400: Type.Ref('Problem'),
          401: Type.Ref('Problem'),
          403: Type.Ref('Problem'),
        },
      },
    },
    async (request) => ({ value: await audit.list(request.query) }),
  )
}

export default auditRoutes
