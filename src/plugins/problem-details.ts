import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { STATUS_CODES } from 'node:http'
import { Type, type Static } from 'typebox'
import { ProblemError } from '../services/errors.ts'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'
const PROBLEM_TYPE_BASE = 'urn:ipam-broker:problem:'

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URI identifying the problem type' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String({ description: 'What went wrong and what to change' }),
    instance: Type.String({ description: 'The request path' }),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    requestId: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          in: Type.String({ description: 'body, querystring, params or headers' }),
          field: Type.String({ description: 'JSON pointer to the offending value' }),
          message: Type.String(),
        }),
      ),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details', additionalProperties: true },
)

export type Problem = Static<typeof ProblemSchema>

function problem(request: FastifyRequest, status: number, code: string, title: string, detail: string): Problem {
  return {
    type: `${PROBLEM_TYPE_BASE}${code}`,
    title,
    status,
    detail,
    instance: request.url.split('?')[0] ?? request.url,
    code,
    requestId: request.id,
  }
}

function send(reply: FastifyReply, body: Problem & Record<string, unknown>) {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body)
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload-too-large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid-body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid-json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid-content-length',
}

interface ValidationIssue {
  instancePath: string
  params: Record<string, unknown>
}

/** JSON pointer to the value at fault; for a missing or unexpected property, the property itself. */
function pointer(issue: ValidationIssue): string {
  const property = issue.params['missingProperty'] ?? issue.params['additionalProperty']
  const base = issue.instancePath
  return typeof property === 'string' ? `${base}/${property.replaceAll('~', '~0').replaceAll('/', '~1')}` : base || '/'
}

/** One error model for every route: RFC 9457 problem details, never internals in a 5xx. */
export default fp(
  async function problemDetails(app: FastifyInstance) {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (error instanceof ProblemError) {
        return send(reply, {
          ...error.extensions,
          ...problem(request, error.status, error.code, error.title, error.message),
        })
      }
      if (error.validation) {
        const where = error.validationContext ?? 'request'
        return send(reply, {
          ...problem(request, 400, 'validation-failed', 'Invalid request', `The ${where} is invalid: ${error.message}`),
          errors: error.validation.map((issue) => ({
            in: where,
            field: pointer(issue),
            message: issue.message ?? 'is invalid',
          })),
        })
      }
      // Only Fastify's own request errors (bad JSON, media type, size) are the caller's to fix; any other
      // error carrying a 4xx status (an Azure SDK RestError, say) is ours, and must not leak through.
      const status = error.statusCode ?? 500
      if (error.code?.startsWith('FST_') && status >= 400 && status < 500) {
        const code = FASTIFY_CODES[error.code] ?? 'bad-request'
        return send(reply, problem(request, status, code, STATUS_CODES[status] ?? 'Bad Request', error.message))
      }
      request.log.error({ err: error }, 'unhandled error')
      return send(
        reply,
        problem(
          request,
          500,
          'internal-error',
          'Internal Server Error',
          `The broker failed to handle this request; quote request id ${request.id} when reporting it.`,
        ),
      )
    })

    app.setNotFoundHandler((request, reply) =>
      send(
        reply,
        problem(request, 404, 'not-found', 'Not Found', `No route ${request.method} ${request.url.split('?')[0]}.`),
      ),
    )
  },
  { name: 'problem-details' },
)
