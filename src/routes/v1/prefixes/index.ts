import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../../plugins/authentication.ts'
import type { HistoryService } from '../../../services/history.ts'

export const PrefixHistorySchema = Type.Object(
  {
    prefix: Type.String({ description: 'The prefix asked about, normalised' }),
    value: Type.Array(
      Type.Object({
        prefix: Type.String({ description: 'The prefix held' }),
        relation: Type.Enum(['equal', 'contains', 'within'], {
          description: 'The held prefix is the one asked about, contains it, or lies within it',
        }),
        heldFrom: Type.String({ format: 'date-time' }),
        heldUntil: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
          description: 'null while still held',
        }),
        allocation: Type.Ref('Allocation'),
      }),
      { description: 'Every holder of an overlapping prefix, in the order they took it' },
    ),
    truncated: Type.Boolean({ description: 'True when there were more holders than limit' }),
  },
  { $id: 'PrefixHistory' },
)

export const PREFIX_SCHEMAS = [PrefixHistorySchema]

const query = Type.Object(
  { limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }) },
  { additionalProperties: false },
)

/** "Who held 10.20.0.0/22, since when": every holder of any overlapping prefix over time. */
const prefixRoutes: FastifyPluginAsyncTypebox<{ history: HistoryService }> = async (app, { history }) => {
  const onRequest = app.requireRole('Requester', 'Reader')
  const response = {
    200: Type.Ref('PrefixHistory'),
    400: Type.Ref('Problem'),
    401: Type.Ref('Problem'),
    403: Type.Ref('Problem'),
  }

  app.get(
    '/v1/prefixes/:cidr/history',
    {
      onRequest,
      schema: {
        tags: ['history'],
        operationId: 'getPrefixHistory',
        summary: 'Every holder of a prefix overlapping this one, over time',
        description:
          'The prefix in CIDR notation with its slash URL-encoded (10.20.0.0%2F22); ' +
          '/v1/prefixes/10.20.0.0/22/history works too. Requesters see their own allocations only.',
        security: [{ entra: [] }],
        params: Type.Object({
          cidr: Type.String({
            maxLength: 64,
            description: 'e.g. 10.20.0.0/22 or fd00:1::/64',
            examples: ['10.20.0.0/22'],
          }),
        }),
        querystring: query,
        response,
      },
    },
    async (request) => history.prefixHistory(callerOf(request), request.params.cidr, request.query.limit),
  )

  // The same with the slash left as a path separator, as people type it.
  app.get(
    '/v1/prefixes/:address/:length/history',
    {
      onRequest,
      schema: {
        hide: true,
        params: Type.Object({ address: Type.String({ maxLength: 48 }), length: Type.String({ maxLength: 3 }) }),
        querystring: query,
        response,
      },
    },
    async (request) =>
      history.prefixHistory(
        callerOf(request),
        `${request.params.address}/${request.params.length}`,
        request.query.limit,
      ),
  )
}

export default prefixRoutes
