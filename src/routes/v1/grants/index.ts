import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Static, Type } from 'typebox'
import { callerOf } from '../../../plugins/authentication.ts'
import type { GrantService } from '../../../services/grants.ts'
import { DescriptionSchema, GuidSchema, PoolIdSchema } from '../schemas.ts'

export const GrantInputSchema = Type.Object(
  {
    principalType: Type.Enum(['object', 'app', 'group'], {
      description:
        'object: a user or service principal (oid); app: every caller of a client app (appid/azp); group: members of an Entra group (groups claim)',
    }),
    principalId: GuidSchema,
    subscriptionIds: Type.Array(GuidSchema, {
      minItems: 1,
      maxItems: 500,
      description: 'Managed subscriptions it may request into',
    }),
    poolIds: Type.Array(PoolIdSchema, { minItems: 1, maxItems: 100, description: 'Pools it may draw on' }),
    maxAddresses: Type.String({
      pattern: '^[1-9][0-9]{0,38}$',
      description: 'Largest numberOfIpAddresses per allocation, as a decimal string',
    }),
    description: Type.Optional(DescriptionSchema),
  },
  { $id: 'GrantInput', additionalProperties: false },
)

export const GrantSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    principalType: Type.Enum(['object', 'app', 'group']),
    principalId: Type.String(),
    subscriptionIds: Type.Array(Type.String()),
    poolIds: Type.Array(Type.String()),
    maxAddresses: Type.String(),
    description: Type.Optional(Type.String()),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    revokedBy: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'Grant' },
)

export const GrantListSchema = Type.Object({ value: Type.Array(Type.Ref('Grant')) }, { $id: 'GrantList' })

export const GRANT_SCHEMAS = [GrantInputSchema, GrantSchema, GrantListSchema]

const problems = { 400: Type.Ref('Problem'), 401: Type.Ref('Problem'), 403: Type.Ref('Problem') }

/** Who may request what: Admins grant and revoke; every change is audited. */
const grantRoutes: FastifyPluginAsyncTypebox<{ grants: GrantService }> = async (app, { grants }) => {
  const admin = app.requireRole('Admin')

  app.post(
    '/v1/grants',
    {
      onRequest: admin,
      schema: {
        tags: ['grants'],
        operationId: 'createGrant',
        summary: 'Allow a caller to request VNets into subscriptions, from pools, up to a size',
        security: [{ entra: [] }],
        body: Type.Ref('GrantInput'),
        response: { 201: Type.Ref('Grant'), ...problems },
      },
    },
    async (request, reply) =>
      reply.code(201).send(await grants.create(callerOf(request), request.body as Static<typeof GrantInputSchema>)),
  )

  app.get(
    '/v1/grants',
    {
      onRequest: admin,
      schema: {
        tags: ['grants'],
        operationId: 'listGrants',
        summary: 'Live grants (and revoked ones on request)',
        security: [{ entra: [] }],
        querystring: Type.Object(
          { principalId: Type.Optional(GuidSchema), includeRevoked: Type.Boolean({ default: false }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref('GrantList'), ...problems },
      },
    },
    async (request) => ({ value: await grants.list(request.query) }),
  )

  app.delete(
    '/v1/grants/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['grants'],
        operationId: 'revokeGrant',
        summary: 'Revoke a grant (kept, marked revoked)',
        security: [{ entra: [] }],
        params: Type.Object({ id: GuidSchema }),
        response: { 200: Type.Ref('Grant'), ...problems, 404: Type.Ref('Problem') },
      },
    },
    async (request) => grants.revoke(callerOf(request), request.params.id),
  )
}

export default grantRoutes
