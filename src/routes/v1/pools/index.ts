import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { PoolInsightService } from '../../../services/pool-insight.ts'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

export const PoolSchema = Type.Object(
  {
    id: Type.String({ description: 'ARM id of the IPAM pool' }),
    name: Type.String(),
    managementTenantId: Type.String({ format: 'uuid', description: 'The management tenant that owns the pool' }),
    networkManagerId: Type.String(),
  },
  { $id: 'Pool' },
)

export const PoolListSchema = Type.Object({ value: Type.Array(Type.Ref('Pool')) }, { $id: 'PoolList' })

const ArmHolding = Type.Object({
  resourceId: Type.String(),
  prefixes: Type.Array(Type.String()),
  kind: Type.Enum(['virtualNetwork', 'staticCidr', 'other']),
})

const LedgerHolding = {
  allocationId: Type.String({ format: 'uuid' }),
  virtualNetworkId: Type.String({ format: 'uuid' }),
  vnetResourceId: Type.String(),
  state: Type.String(),
  prefixes: Type.Array(Type.String()),
}

export const PoolUsageSchema = Type.Object(
  {
    pool: Type.Object({ ...PoolSchema.properties, addressPrefixes: Type.Array(Type.String()) }),
    readAt: Type.String({ format: 'date-time', description: 'When ARM was read' }),
    arm: Type.Object(
      {
        totalNumberOfIPAddresses: Nullable(Type.String()),
        numberOfAllocatedIPAddresses: Nullable(Type.String()),
        numberOfReservedIPAddresses: Nullable(Type.String()),
        numberOfAvailableIPAddresses: Nullable(Type.String()),
        allocatedAddressPrefixes: Type.Array(Type.String()),
        reservedAddressPrefixes: Type.Array(Type.String()),
        availableAddressPrefixes: Type.Array(Type.String()),
        associatedResources: Type.Array(ArmHolding),
      },
      { description: "ARM's getPoolUsage and listAssociatedResources, read with the management tenant's identity" },
    ),
    ledger: Type.Object(
      {
        active: Type.Integer(),
        inFlight: Type.Integer({ description: 'Deploying or releasing: left out of the drift' }),
        prefixes: Type.Array(Type.String()),
        holdings: Type.Array(Type.Object(LedgerHolding)),
      },
      {
        description:
          "The broker's ledger: allocations of this pool that hold, or are about to hold or give back, prefixes",
      },
    ),
    drift: Type.Object({
      inSync: Type.Boolean(),
      armOnly: Type.Array(ArmHolding, { description: 'Prefixes ARM shows associated that the ledger does not hold' }),
      ledgerOnly: Type.Array(Type.Object({ ...LedgerHolding, missingPrefixes: Type.Array(Type.String()) }), {
        description: 'Active allocations whose VNet and prefixes ARM no longer shows',
      }),
    }),
  },
  { $id: 'PoolUsage' },
)

export const POOL_SCHEMAS = [PoolSchema, PoolListSchema, PoolUsageSchema]

const problems = {
  400: Type.Ref('Problem'),
  401: Type.Ref('Problem'),
  403: Type.Ref('Problem'),
}

/** The registered IPAM pools, and each one's live usage beside the ledger's view. */
const poolRoutes: FastifyPluginAsyncTypebox<{ pools: PoolInsightService }> = async (app, { pools }) => {
  const onRequest = app.requireRole('Reader')

  app.get(
    '/v1/pools',
    {
      onRequest,
      schema: {
        tags: ['pools'],
        operationId: 'listPools',
        summary: 'The IPAM pools the registered management tenants offer',
        security: [{ entra: [] }],
        response: { 200: Type.Ref('PoolList'), ...problems },
      },
    },
    async () => ({ value: await pools.list() }),
  )

  app.get(
    '/v1/pools/:pool/usage',
    {
      onRequest,
      schema: {
        tags: ['pools'],
        operationId: 'getPoolUsage',
        summary: "A pool's usage read live from ARM beside the ledger's, with the drift between them",
        description:
          'The pool by name (when one registered pool has it) or by ARM id, URL-encoded. ' +
          "ARM is read with the management tenant's identity (a registered deployer app's service principal there).",
        security: [{ entra: [] }],
        params: Type.Object({
          pool: Type.String({ minLength: 1, maxLength: 1024, examples: ['pool-retail'] }),
        }),
        response: {
          200: Type.Ref('PoolUsage'),
          ...problems,
          404: Type.Ref('Problem'),
          409: Type.Ref('Problem'),
          502: Type.Ref('Problem'),
        },
      },
    },
    async (request) => pools.usage(request.params.pool),
  )
}

export default poolRoutes
