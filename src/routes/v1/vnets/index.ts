import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { callerOf } from '../../../plugins/authentication.ts'
import { type Static, Type } from 'typebox'
import { OperationService, type OperationView } from '../../../services/operations.ts'
import type { IpamAllocationRequest, Submitted, VnetService } from '../../../services/vnets.ts'
import { closedSignal, WaitQuerySchema } from '../operations/index.ts'
import {
  GuidSchema,
  IdempotencyKeyHeaderSchema,
  LabelSchema,
  LocationSchema,
  NetworkGroupSchema,
  PoolIdSchema,
  ResourceGroupSchema,
  SizeSchema,
  TagsSchema,
  VnetNameSchema,
} from '../schemas.ts'

// One IPAM allocation, in any of the three shapes people already write: the broker's, the Azure CLI's
// `--ipam-allocations` (pool id flattened to `id`) and ARM's own (`pool.id`).
const IpamAllocationSchema = Type.Union(
  [
    Type.Object({ poolId: PoolIdSchema, numberOfIpAddresses: SizeSchema }, { additionalProperties: false }),
    Type.Object({ id: PoolIdSchema, numberOfIpAddresses: SizeSchema }, { additionalProperties: false }),
    Type.Object(
      { pool: Type.Object({ id: PoolIdSchema }, { additionalProperties: false }), numberOfIpAddresses: SizeSchema },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'Addresses from an IPAM pool: {poolId, numberOfIpAddresses}, {id, ...} (Azure CLI) or {pool: {id}, ...} (ARM)',
  },
)

const IpamAllocationsSchema = Type.Array(IpamAllocationSchema, {
  minItems: 1,
  maxItems: 2,
  description: 'At most one IPv4 and one IPv6 pool',
})

const Requester = {
  networkGroups: Type.Optional(
    Type.Array(NetworkGroupSchema, {
      maxItems: 10,
      description: 'AVNM network groups to add the VNet to as a static member',
    }),
  ),
  team: Type.Optional(LabelSchema),
  ticket: Type.Optional(LabelSchema),
}

export const VnetRequestSchema = Type.Object(
  {
    subscriptionId: GuidSchema,
    resourceGroup: ResourceGroupSchema,
    name: VnetNameSchema,
    location: LocationSchema,
    ipamAllocations: IpamAllocationsSchema,
    subnets: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$' }),
            numberOfIpAddresses: SizeSchema,
            poolId: Type.Optional(PoolIdSchema),
          },
          { additionalProperties: false },
        ),
        { maxItems: 100, description: "Subnets carved from the VNet's own allocation (default: its first pool)" },
      ),
    ),
    tags: Type.Optional(TagsSchema),
    ...Requester,
  },
  { $id: 'VnetRequest', additionalProperties: false },
)

export const VnetAssociationSchema = Type.Object(
  {
    subscriptionId: GuidSchema,
    resourceGroup: ResourceGroupSchema,
    name: VnetNameSchema,
    ipamAllocations: IpamAllocationsSchema,
    ...Requester,
  },
  { $id: 'VnetAssociation', additionalProperties: false },
)

const AllocationViewSchema = Type.Object({
  id: Type.String(),
  poolId: Type.String(),
  numberOfIpAddresses: Type.String(),
  state: Type.String(),
  prefixes: Type.Array(Type.String()),
  allocatedAt: Type.Union([Type.String(), Type.Null()]),
  releasedAt: Type.Union([Type.String(), Type.Null()]),
})

const VnetProperties = {
  id: Type.String({ format: 'uuid' }),
  managedTenantId: Type.String(),
  subscriptionId: Type.String(),
  resourceGroup: Type.String(),
  name: Type.String(),
  resourceId: Type.String(),
  location: Type.Union([Type.String(), Type.Null()]),
  state: Type.Enum(['deploying', 'active', 'releasing', 'released', 'deleting', 'deleted', 'failed']),
  team: Type.Union([Type.String(), Type.Null()]),
  ticket: Type.Union([Type.String(), Type.Null()]),
  requesterOid: Type.String(),
  networkGroupIds: Type.Array(Type.String()),
  allocations: Type.Array(AllocationViewSchema),
  operations: Type.Array(
    Type.Object({ id: Type.String(), kind: Type.String(), state: Type.String(), createdAt: Type.String() }),
  ),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
}

export const VnetSchema = Type.Object(VnetProperties, { $id: 'Vnet' })

export const VnetWithLiveStateSchema = Type.Object(
  {
    ...VnetProperties,
    live: Type.Unknown({
      description: 'What ARM says about the VNet now (exists, provisioningState, prefixes, tags, subnets)',
    }),
  },
  { $id: 'VnetWithLiveState' },
)

export const VnetListSchema = Type.Object({ value: Type.Array(Type.Ref('Vnet')) }, { $id: 'VnetList' })

export const VNET_SCHEMAS = [
  VnetRequestSchema,
  VnetAssociationSchema,
  VnetSchema,
  VnetWithLiveStateSchema,
  VnetListSchema,
]

const problems = {
  400: Type.Ref('Problem'),
  401: Type.Ref('Problem'),
  403: Type.Ref('Problem'),
}

type AllocationInput = Static<typeof IpamAllocationSchema>

function normaliseAllocations(items: readonly AllocationInput[]): IpamAllocationRequest[] {
  return items.map((item) => ({
    poolId: 'poolId' in item ? item.poolId : 'id' in item ? item.id : item.pool.id,
    numberOfIpAddresses: String(item.numberOfIpAddresses),
  }))
}

export interface VnetRoutesOptions {
  vnets: VnetService
  operations: OperationService
  waitMaxSeconds: number
}

const vnetRoutes: FastifyPluginAsyncTypebox<VnetRoutesOptions> = async (app, { vnets, operations, waitMaxSeconds }) => {
  /** 202 + Location while the operation runs; 200 once it has finished (within `?wait=`). */
  async function answer(
    request: FastifyRequest,
    reply: FastifyReply,
    submitted: Submitted,
    waitSeconds: number | undefined,
  ) {
    const seconds = Math.min(waitSeconds ?? 0, waitMaxSeconds)
    let view: OperationView = submitted.operation
    if (seconds > 0 && !OperationService.finished(view))
      view = await operations.waitFor(callerOf(request), view.id, seconds, closedSignal(reply.raw))
    if (!submitted.created) reply.header('idempotent-replayed', 'true')
    return reply
      .code(OperationService.finished(view) ? 200 : 202)
      .header('location', `/v1/operations/${view.id}`)
      .send(view)
  }

  const submitResponses = {
    200: Type.Ref('Operation'),
    202: Type.Ref('Operation'),
    ...problems,
    409: Type.Ref('Problem'),
    422: Type.Ref('Problem'),
  }

  app.post(
    '/v1/vnets',
    {
      onRequest: app.requireRole('Requester'),
      schema: {
        tags: ['vnets'],
        operationId: 'createVnet',
        summary: 'Deploy a VNet in a managed tenant with address space from IPAM pools of the management tenant',
        security: [{ entra: [] }],
        headers: IdempotencyKeyHeaderSchema,
        querystring: WaitQuerySchema,
        body: Type.Ref('VnetRequest'),
        response: submitResponses,
      },
    },
    async (request, reply) => {
      const body = request.body as Static<typeof VnetRequestSchema>
      const submitted = await vnets.deploy(
        callerOf(request),
        {
          ...body,
          ipamAllocations: normaliseAllocations(body.ipamAllocations),
          subnets: body.subnets?.map((s) => ({ ...s, numberOfIpAddresses: String(s.numberOfIpAddresses) })),
        },
        request.headers['idempotency-key'],
      )
      return answer(request, reply, submitted, request.query.wait)
    },
  )

  app.post(
    '/v1/vnets/associate',
    {
      onRequest: app.requireRole('Requester'),
      schema: {
        tags: ['vnets'],
        operationId: 'associateVnet',
        summary: "Move an existing VNet's address space onto IPAM pool allocations, keeping its other settings",
        security: [{ entra: [] }],
        headers: IdempotencyKeyHeaderSchema,
        querystring: WaitQuerySchema,
        body: Type.Ref('VnetAssociation'),
        response: submitResponses,
      },
    },
    async (request, reply) => {
      const body = request.body as Static<typeof VnetAssociationSchema>
      const submitted = await vnets.associate(
        callerOf(request),
        { ...body, ipamAllocations: normaliseAllocations(body.ipamAllocations) },
        request.headers['idempotency-key'],
      )
      return answer(request, reply, submitted, request.query.wait)
    },
  )

  app.get(
    '/v1/vnets',
    {
      onRequest: app.requireRole('Requester', 'Reader'),
      schema: {
        tags: ['vnets'],
        operationId: 'listVnets',
        summary: "The broker's VNet records, newest first",
        security: [{ entra: [] }],
        querystring: Type.Object(
          {
            subscriptionId: Type.Optional(GuidSchema),
            state: Type.Optional(
              Type.Enum(['deploying', 'active', 'releasing', 'released', 'deleting', 'deleted', 'failed']),
            ),
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref('VnetList'), ...problems },
      },
    },
    async (request) => ({ value: await vnets.list(callerOf(request), request.query) }),
  )

  app.get(
    '/v1/vnets/:id',
    {
      onRequest: app.requireRole('Requester', 'Reader'),
      schema: {
        tags: ['vnets'],
        operationId: 'getVnet',
        summary: "The broker's record of a VNet beside its live state in ARM",
        security: [{ entra: [] }],
        params: Type.Object({ id: GuidSchema }),
        response: { 200: Type.Ref('VnetWithLiveState'), ...problems, 404: Type.Ref('Problem') },
      },
    },
    async (request) => vnets.get(callerOf(request), request.params.id),
  )

  app.delete(
    '/v1/vnets/:id',
    {
      onRequest: app.requireRole('Requester'),
      schema: {
        tags: ['vnets'],
        operationId: 'removeVnet',
        summary:
          "Give a VNet's addresses back: mode=release keeps the VNet with static prefixes, mode=delete deletes it",
        security: [{ entra: [] }],
        headers: IdempotencyKeyHeaderSchema,
        params: Type.Object({ id: GuidSchema }),
        querystring: Type.Object(
          { mode: Type.Enum(['release', 'delete']), wait: WaitQuerySchema.properties.wait },
          { additionalProperties: false },
        ),
        response: { ...submitResponses, 404: Type.Ref('Problem') },
      },
    },
    async (request, reply) => {
      const submitted = await vnets.remove(
        callerOf(request),
        request.params.id,
        request.query.mode,
        request.headers['idempotency-key'],
      )
      return answer(request, reply, submitted, request.query.wait)
    },
  )
}

export default vnetRoutes
