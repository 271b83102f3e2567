import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { type Static, Type } from 'typebox'
import { callerOf } from '../../../plugins/authentication.ts'
import type { PreflightService } from '../../../services/preflight.ts'
import type { TenantRegistryService } from '../../../services/tenant-registry.ts'
import { DisplayNameSchema, GuidSchema, NetworkManagerIdSchema, PoolIdSchema, ResourceGroupSchema } from '../schemas.ts'

const Timestamps = { createdAt: Type.String({ format: 'date-time' }), updatedAt: Type.String({ format: 'date-time' }) }

export const ManagementTenantInputSchema = Type.Object(
  {
    displayName: DisplayNameSchema,
    networkManagerId: NetworkManagerIdSchema,
    poolIds: Type.Array(PoolIdSchema, {
      maxItems: 100,
      description: 'IPAM pools this tenant offers to its managed tenants',
    }),
  },
  { $id: 'ManagementTenantInput', additionalProperties: false },
)

export const ManagementTenantSchema = Type.Object(
  { tenantId: GuidSchema, ...ManagementTenantInputSchema.properties, ...Timestamps },
  { $id: 'ManagementTenant' },
)

const SecretReferenceSchema = Type.Object(
  {
    vaultUrl: Type.String({ pattern: '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$', description: 'Key Vault URL' }),
    secretName: Type.String({
      pattern: '^[0-9A-Za-z-]{1,127}$',
      description: 'Name of the secret holding the client secret',
    }),
  },
  {
    additionalProperties: false,
    description: "Where the app's client secret is kept; the secret itself never reaches the broker's records",
  },
)

export const ManagedTenantInputSchema = Type.Object(
  {
    displayName: DisplayNameSchema,
    managementTenantId: GuidSchema,
    appId: Type.String({ ...GuidSchema, description: 'Client id of the multi-tenant app the broker acts as' }),
    clientSecret: SecretReferenceSchema,
    subscriptionIds: Type.Array(GuidSchema, { minItems: 1, maxItems: 500 }),
  },
  { $id: 'ManagedTenantInput', additionalProperties: false },
)

export const ManagedTenantSchema = Type.Object(
  { tenantId: GuidSchema, ...ManagedTenantInputSchema.properties, ...Timestamps },
  { $id: 'ManagedTenant' },
)

export const TenantListSchema = Type.Object(
  { management: Type.Array(Type.Ref('ManagementTenant')), managed: Type.Array(Type.Ref('ManagedTenant')) },
  { $id: 'TenantList' },
)

export const PreflightInputSchema = Type.Object(
  {
    subscriptionId: Type.Optional(GuidSchema),
    resourceGroup: ResourceGroupSchema,
    poolIds: Type.Optional(Type.Array(PoolIdSchema, { maxItems: 20 })),
  },
  { $id: 'PreflightInput', additionalProperties: false },
)

export const PreflightReportSchema = Type.Object(
  {
    tenantId: Type.String(),
    subscriptionId: Type.String(),
    resourceGroup: Type.String(),
    ok: Type.Boolean(),
    checks: Type.Array(
      Type.Object({
        name: Type.String(),
        status: Type.Enum(['pass', 'fail', 'skipped']),
        detail: Type.String(),
        code: Type.Optional(Type.String()),
      }),
    ),
  },
  { $id: 'PreflightReport' },
)

export const TENANT_SCHEMAS = [
  ManagementTenantInputSchema,
  ManagementTenantSchema,
  ManagedTenantInputSchema,
  ManagedTenantSchema,
  TenantListSchema,
  PreflightInputSchema,
  PreflightReportSchema,
]

const TenantParams = Type.Object({ tenantId: GuidSchema })
const problems = { 400: Type.Ref('Problem'), 401: Type.Ref('Problem'), 403: Type.Ref('Problem') }

export interface TenantRoutesOptions {
  registry: TenantRegistryService
  preflight: PreflightService
}

/** The tenant registry: which tenants the broker serves, and as which app. Admins only. */
const tenantRoutes: FastifyPluginAsyncTypebox<TenantRoutesOptions> = async (app, { registry, preflight }) => {
  const admin = app.requireRole('Admin')

  app.get(
    '/v1/tenants',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'listTenants',
        summary: 'Every registered tenant',
        security: [{ entra: [] }],
        response: { 200: Type.Ref('TenantList'), ...problems },
      },
    },
    async () => ({ management: await registry.listManagementTenants(), managed: await registry.listManagedTenants() }),
  )

  app.put(
    '/v1/tenants/management/:tenantId',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'putManagementTenant',
        summary: 'Register (or update) a management tenant: its network manager and the pools it offers',
        security: [{ entra: [] }],
        params: TenantParams,
        body: Type.Ref('ManagementTenantInput'),
        response: { 200: Type.Ref('ManagementTenant'), ...problems, 422: Type.Ref('Problem') },
      },
    },
    async (request) =>
      registry.putManagementTenant(
        callerOf(request),
        request.params.tenantId,
        request.body as Static<typeof ManagementTenantInputSchema>,
      ),
  )

  app.get(
    '/v1/tenants/management/:tenantId',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'getManagementTenant',
        summary: 'One management tenant',
        security: [{ entra: [] }],
        params: TenantParams,
        response: { 200: Type.Ref('ManagementTenant'), ...problems, 404: Type.Ref('Problem') },
      },
    },
    async (request) => registry.getManagementTenant(request.params.tenantId),
  )

  app.put(
    '/v1/tenants/managed/:tenantId',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'putManagedTenant',
        summary:
          'Register (or update) a managed tenant: its subscriptions and the app (by Key Vault secret reference) the broker acts as',
        security: [{ entra: [] }],
        params: TenantParams,
        body: Type.Ref('ManagedTenantInput'),
        response: { 200: Type.Ref('ManagedTenant'), ...problems, 409: Type.Ref('Problem'), 422: Type.Ref('Problem') },
      },
    },
    async (request) =>
      registry.putManagedTenant(
        callerOf(request),
        request.params.tenantId,
        request.body as Static<typeof ManagedTenantInputSchema>,
      ),
  )

  app.get(
    '/v1/tenants/managed/:tenantId',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'getManagedTenant',
        summary: 'One managed tenant',
        security: [{ entra: [] }],
        params: TenantParams,
        response: { 200: Type.Ref('ManagedTenant'), ...problems, 404: Type.Ref('Problem') },
      },
    },
    async (request) => registry.getManagedTenant(request.params.tenantId),
  )

  app.post(
    '/v1/tenants/managed/:tenantId/preflight',
    {
      onRequest: admin,
      schema: {
        tags: ['tenants'],
        operationId: 'preflightManagedTenant',
        summary: 'Check a registration end to end: secret, tokens, pool access, VNet write, cross-tenant connection',
        security: [{ entra: [] }],
        params: TenantParams,
        body: Type.Ref('PreflightInput'),
        response: { 200: Type.Ref('PreflightReport'), ...problems, 404: Type.Ref('Problem'), 422: Type.Ref('Problem') },
      },
    },
    async (request) => preflight.check(request.params.tenantId, request.body as Static<typeof PreflightInputSchema>),
  )
}

export default tenantRoutes
