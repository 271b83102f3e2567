import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Negotiator from 'negotiator'
import { Type } from 'typebox'
import { callerOf } from '../../../plugins/authentication.ts'
import { ProblemError } from '../../../services/errors.ts'
import { ALLOCATION_SORTS, type HistoryService } from '../../../services/history.ts'
import { GuidSchema, LabelSchema } from '../schemas.ts'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])
const DateTime = (description: string) => Type.String({ format: 'date-time', description })

export const AllocationSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    state: Type.Enum(['requested', 'deploying', 'active', 'releasing', 'released', 'failed']),
    tenantId: Type.String({ format: 'uuid', description: "The managed tenant's Entra tenant id" }),
    subscriptionId: Type.String({ format: 'uuid' }),
    resourceGroup: Type.String(),
    vnetName: Type.String(),
    vnetResourceId: Type.String({ description: 'ARM id of the VNet' }),
    virtualNetworkId: Type.String({ format: 'uuid', description: "The broker's VNet record (GET /v1/vnets/{id})" }),
    poolId: Type.String({ description: 'ARM id of the IPAM pool' }),
    prefixes: Type.Array(Type.String(), { description: 'Prefixes ARM allocated (kept after release, for history)' }),
    requestedSize: Type.String({ description: 'Addresses asked for, as a decimal string' }),
    team: Nullable(Type.String()),
    ticket: Nullable(Type.String()),
    requesterOid: Type.String({ description: 'Entra object id of whoever asked' }),
    operationId: Type.String({ format: 'uuid', description: 'The operation that created the allocation' }),
    createdAt: DateTime('When the allocation was asked for'),
    allocatedAt: Nullable(DateTime('When ARM allocated its prefixes')),
    releasedAt: Nullable(DateTime('When ARM took them back')),
  },
  { $id: 'Allocation' },
)

export const AllocationListSchema = Type.Object(
  {
    value: Type.Array(Type.Ref('Allocation')),
    nextLink: Type.Union([Type.String(), Type.Null()], {
      description: 'The next page (same filters and sort), or null on the last page',
    }),
  },
  { $id: 'AllocationList' },
)

export const AllocationEventSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.Enum(['requested', 'deploying', 'allocated', 'releasing', 'released', 'failed', 'drift_detected']),
    at: DateTime('When it happened'),
    actor: Type.String({ description: 'Entra object id of whoever caused it' }),
    operationId: Nullable(Type.String({ format: 'uuid' })),
    prefixes: Type.Array(Type.String()),
    armRequestId: Nullable(Type.String()),
    armCorrelationId: Nullable(Type.String()),
    detail: Type.Unknown(),
  },
  { $id: 'AllocationEvent' },
)

export const AllocationWithEventsSchema = Type.Object(
  {
    ...AllocationSchema.properties,
    events: Type.Array(Type.Ref('AllocationEvent'), { description: 'The ledger, oldest first' }),
  },
  { $id: 'AllocationWithEvents' },
)

export const ALLOCATION_SCHEMAS = [
  AllocationSchema,
  AllocationListSchema,
  AllocationEventSchema,
  AllocationWithEventsSchema,
]

const FORMATS = ['application/json', 'text/csv', 'application/x-ndjson'] as const
const EXPORT_FORMAT = { 'text/csv': 'csv', 'application/x-ndjson': 'ndjson' } as const

const problems = {
  400: Type.Ref('Problem'),
  401: Type.Ref('Problem'),
  403: Type.Ref('Problem'),
}

export const AllocationQuerySchema = Type.Object(
  {
    tenantId: Type.Optional({ ...GuidSchema, description: "The managed tenant's Entra tenant id" }),
    subscriptionId: Type.Optional(GuidSchema),
    poolId: Type.Optional(
      Type.String({
        maxLength: 1024,
        pattern: '^/[\\x21-\\x7E]+$',
        description: 'ARM id of an IPAM pool (case-insensitive, as ARM ids are)',
        examples: [
          '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso/ipamPools/pool-retail',
        ],
      }),
    ),
    team: Type.Optional(LabelSchema),
    requesterOid: Type.Optional({ ...GuidSchema, description: 'Entra object id of the requester' }),
    state: Type.Optional(Type.Enum(['requested', 'deploying', 'active', 'releasing', 'released', 'failed'])),
    virtualNetworkId: Type.Optional(GuidSchema),
    createdFrom: Type.Optional(DateTime('Created at or after')),
    createdTo: Type.Optional(DateTime('Created before')),
    releasedFrom: Type.Optional(DateTime('Released at or after')),
    releasedTo: Type.Optional(DateTime('Released before')),
    activeAt: Type.Optional(DateTime('Held its prefixes at this instant (allocated by then, not yet released)')),
    containsIp: Type.Optional(
      Type.String({
        maxLength: 64,
        description: 'Holds a prefix containing this IPv4 or IPv6 address',
        examples: ['10.1.2.3'],
      }),
    ),
    overlaps: Type.Optional(
      Type.String({ maxLength: 64, description: 'Holds a prefix overlapping this CIDR', examples: ['10.20.0.0/16'] }),
    ),
    sort: Type.Enum([...ALLOCATION_SORTS], {
      default: '-createdAt',
      description: "'-' for descending; an empty allocatedAt/releasedAt sorts as the far future",
    }),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Page size (JSON only)' }),
    cursor: Type.Optional(
      Type.String({ maxLength: 512, pattern: '^[A-Za-z0-9_-]+$', description: 'From nextLink; JSON pages only' }),
    ),
  },
  { additionalProperties: false },
)

/** Allocation history for SREs: filtered pages, whole exports, one allocation's timeline. */
const allocationRoutes: FastifyPluginAsyncTypebox<{ history: HistoryService }> = async (app, { history }) => {
  app.get(
    '/v1/allocations',
    {
      onRequest: app.requireRole('Requester', 'Reader'),
      schema: {
        tags: ['history'],
        operationId: 'listAllocations',
        summary: 'Allocations by tenant, subscription, pool, team, requester, state, time, address or prefix',
        description:
          'JSON pages (newest first by default) with a nextLink that stays stable while allocations are added. ' +
          'With `Accept: text/csv` or `Accept: application/x-ndjson` the whole result streams as one export ' +
          '(limit and cursor do not apply). Requesters see their own allocations; Readers and Admins all.',
        security: [{ entra: [] }],
        querystring: AllocationQuerySchema,
        response: {
          200: {
            description: 'A page of allocations, or the whole export',
            content: {
              'application/json': { schema: Type.Ref('AllocationList') },
              'text/csv': { schema: Type.String({ description: 'RFC 4180, with a header line' }) },
              'application/x-ndjson': { schema: Type.String({ description: 'One Allocation per line' }) },
            },
          },
          ...problems,
          406: Type.Ref('Problem'),
        },
      },
    },
    async (request, reply) => {
      // No Accept (or an empty one) means JSON; */*, text/* and q-values are weighed as RFC 9110 says.
      const format = request.headers.accept?.trim()
        ? (new Negotiator(request).mediaType([...FORMATS]) as (typeof FORMATS)[number] | undefined)
        : 'application/json'
      if (!format) {
        throw new ProblemError(
          406,
          'not-acceptable',
          'Not acceptable',
          `Allocations are served as ${FORMATS.join(', ')}; the Accept header allows none of them.`,
        )
      }
      const { sort, limit, cursor, ...filter } = request.query
      const caller = callerOf(request)
      if (format !== 'application/json') {
        const stream = await history.export(caller, filter, sort, EXPORT_FORMAT[format])
        const stamp = new Date().toISOString().replace(/[:.]/g, '-')
        return reply
          .type(`${format}; charset=utf-8`)
          .header(
            'content-disposition',
            `attachment; filename="allocations-${stamp}.${EXPORT_FORMAT[format] === 'csv' ? 'csv' : 'ndjson'}"`,
          )
          .send(stream)
      }
      const page = await history.list(caller, filter, sort, limit, cursor)
      return { value: page.value, nextLink: page.next && nextLink(request.url, page.next) }
    },
  )

  app.get(
    '/v1/allocations/:id',
    {
      onRequest: app.requireRole('Requester', 'Reader'),
      schema: {
        tags: ['history'],
        operationId: 'getAllocation',
        summary: 'One allocation with its whole ledger timeline',
        security: [{ entra: [] }],
        params: Type.Object({ id: GuidSchema }),
        response: { 200: Type.Ref('AllocationWithEvents'), ...problems, 404: Type.Ref('Problem') },
      },
    },
    async (request) => history.get(callerOf(request), request.params.id.toLowerCase()),
  )
}

/** This request's URL with the next page's cursor in place of its own. */
function nextLink(url: string, cursor: string): string {
  const [path, query = ''] = url.split('?', 2) as [string, string?]
  const params = new URLSearchParams(query)
  params.set('cursor', cursor)
  return `${path}?${params.toString()}`
}

export default allocationRoutes
