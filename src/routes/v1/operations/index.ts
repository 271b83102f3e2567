import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../../plugins/authentication.ts'
import type { OperationService } from '../../../services/operations.ts'
import { GuidSchema } from '../schemas.ts'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

export const OperationErrorSchema = Type.Object(
  {
    code: Type.String({ description: "ARM's error code (or the broker's, Key Vault's, Entra's)" }),
    message: Type.String(),
    source: Type.Enum(['arm', 'entra', 'key-vault', 'broker']),
    status: Type.Union([Type.Integer(), Type.Null()]),
    armRequestId: Nullable(Type.String()),
    armCorrelationId: Nullable(Type.String()),
    advice: Type.String({ description: 'What the caller should do about it' }),
    retrying: Type.Optional(Type.Boolean({ description: 'True while the broker retries a transient failure' })),
  },
  { $id: 'OperationError' },
)

export const OperationSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    kind: Type.Enum(['deploy', 'associate', 'release', 'delete']),
    state: Type.Enum(['queued', 'running', 'succeeded', 'failed']),
    virtualNetworkId: Type.String({ format: 'uuid', description: "The broker's VNet record (GET /v1/vnets/{id})" }),
    vnetResourceId: Type.String({ description: 'ARM id of the VNet' }),
    requester: Type.Object({ oid: Type.String(), appId: Nullable(Type.String()) }),
    idempotencyKey: Nullable(Type.String()),
    request: Type.Unknown({ description: 'The request as the broker understood it (pools resolved)' }),
    attempts: Type.Integer(),
    steps: Type.Array(
      Type.Object({
        name: Type.String(),
        state: Type.Enum(['queued', 'running', 'succeeded', 'failed']),
        armRequestId: Nullable(Type.String()),
        armCorrelationId: Nullable(Type.String()),
        detail: Type.Unknown(),
        startedAt: Type.String({ format: 'date-time' }),
        finishedAt: Nullable(Type.String({ format: 'date-time' })),
      }),
    ),
    result: Type.Unknown({ description: 'On success: the VNet id, its prefixes and each pool allocation' }),
    error: Type.Union([Type.Ref('OperationError'), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Nullable(Type.String({ format: 'date-time' })),
    finishedAt: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Operation' },
)

export const OPERATION_SCHEMAS = [OperationErrorSchema, OperationSchema]

export const WaitQuerySchema = Type.Object(
  {
    wait: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 300,
        description: 'Seconds to wait for the operation to finish before answering (bounded by WAIT_MAX_SECONDS)',
      }),
    ),
  },
  { additionalProperties: false },
)

export interface OperationRoutesOptions {
  operations: OperationService
  waitMaxSeconds: number
}

const operationRoutes: FastifyPluginAsyncTypebox<OperationRoutesOptions> = async (
  app,
  { operations, waitMaxSeconds },
) => {
  app.get(
    '/v1/operations/:id',
    {
      onRequest: app.requireRole('Requester', 'Reader'),
      schema: {
        tags: ['operations'],
        operationId: 'getOperation',
        summary: 'How an operation stands: state, steps with ARM ids, result or error with advice',
        security: [{ entra: [] }],
        params: Type.Object({ id: GuidSchema }),
        querystring: WaitQuerySchema,
        response: {
          200: Type.Ref('Operation'),
          400: Type.Ref('Problem'),
          401: Type.Ref('Problem'),
          403: Type.Ref('Problem'),
          404: Type.Ref('Problem'),
        },
      },
    },
    async (request, reply) => {
      const seconds = Math.min(request.query.wait ?? 0, waitMaxSeconds)
      return seconds > 0
        ? operations.waitFor(callerOf(request), request.params.id, seconds, closedSignal(reply.raw))
        : operations.get(callerOf(request), request.params.id)
    },
  )
}

/** Aborted when the caller hangs up, so a waiting request stops polling. */
export function closedSignal(response: NodeJS.EventEmitter): AbortSignal {
  const controller = new AbortController()
  response.once('close', () => controller.abort())
  return controller.signal
}

export default operationRoutes
