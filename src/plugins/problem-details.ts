import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { Type, type Static } from 'typebox'
import { ProblemError } from '../services/errors.ts'
import { isPoolExhausted } from '../db/client.ts'

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

/**
 * Ajv coerces a numeric string that overflows ("1e400", four hundred nines) to ±Infinity and then skips
 * minimum/maximum, which it checks on finite numbers only. No JSON number is infinite, so one found after
 * validation came that way: the pointer to it, if any.
 */
function infinitePointer(value: unknown): string | undefined {
  const stack: [unknown, string][] = [[value, '']]
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [item, path] = next
    if (typeof item === 'number' && !Number.isFinite(item)) return path
    if (item && typeof item === 'object') {
      for (const [key, child] of Object.entries(item)) {
        stack.push([child, `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`])
      }
    }
  }
  return undefined
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
      if (isPoolExhausted(error)) {
        request.log.warn({ err: error }, 'no database connection free in time')
        reply.header('retry-after', '1')
        return send(
          reply,
          problem(
            request,
            503,
            'database-busy',
            'Database busy',
            'Every database connection stayed busy; retry after the Retry-After delay.',
          ),
        )
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

    // Out-of-range numbers Ajv let through (see infinitePointer) are refused like any other invalid value.
    app.addHook('preHandler', async (request) => {
      const schema = request.routeOptions.schema
      const parts = [
        ['params', request.params],
        ['querystring', request.query],
        ['body', request.body],
      ] as const
      for (const [context, value] of parts) {
        const field = schema?.[context] ? infinitePointer(value) : undefined
        if (field === undefined) continue
        throw Object.assign(new Error(`${context}${field} must be a finite number`), {
          statusCode: 400,
          validationContext: context,
          validation: [
            { keyword: 'maximum', instancePath: field, schemaPath: '', params: {}, message: 'must be a finite number' },
          ],
        })
      }
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

const FRAMEWORK_PROBLEMS: Record<string, { status: number; code: string; title: string; detail: string }> = {
  FST_ERR_BAD_URL: {
    status: 400,
    code: 'bad-url',
    title: 'Bad URL',
    detail: 'The path is not valid percent-encoding.',
  },
  FST_ERR_MAX_PARAM_LENGTH: {
    status: 414,
    code: 'uri-too-long',
    title: 'Path parameter too long',
    detail: 'A path parameter is longer than this API accepts; check the id you sent.',
  },
}

/**
 * Fastify's own rejections before routing (bad percent-encoding, oversized path parameters):
 * problem details like every other answer (the `frameworkErrors` option).
 */
export function frameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = FRAMEWORK_PROBLEMS[error.code] ?? {
    status: 400,
    code: 'bad-request',
    title: 'Bad request',
    detail: 'The request could not be routed.',
  }
  void send(reply, problem(request, known.status, known.code, known.title, known.detail))
}

function rawProblem(status: number, code: string, detail: string, head = false): string {
  const title = STATUS_CODES[status] ?? 'Error'
  const body = JSON.stringify({ type: `${PROBLEM_TYPE_BASE}${code}`, title, status, detail, instance: '/', code })
  // A HEAD answer carries the headers of the body it would have, and no body.
  return `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`
}

/** Requests Node's HTTP parser refuses (the `clientErrorHandler` option): problem details written on the socket. */
export function clientError(err: ConnectionError, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // Node hands over the bytes it could not parse as a Buffer (Fastify types them as its JSON form).
  const raw: unknown = err.rawPacket
  const packet = Buffer.isBuffer(raw) ? raw : Buffer.from((raw as { data?: number[] } | undefined)?.data ?? [])
  const head = packet.subarray(0, 5).toString('latin1') === 'HEAD '
  const answer =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? rawProblem(408, 'request-timeout', 'The request was not received in time.', head)
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? rawProblem(431, 'headers-too-large', 'The request headers are larger than this API accepts.', head)
        : rawProblem(400, 'malformed-request', 'The request is not valid HTTP/1.1.', head)
  if (socket.writable) socket.write(answer)
  socket.destroy()
}

/** An `Expect` other than 100-continue (Node's 'checkExpectation'): 417 as problem details. */
export function expectationFailed(request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify({
    type: `${PROBLEM_TYPE_BASE}expectation-failed`,
    title: 'Expectation Failed',
    status: 417,
    detail: 'Only "Expect: 100-continue" is supported.',
    instance: (request.url ?? '/').split('?')[0],
    code: 'expectation-failed',
  })
  response.writeHead(417, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

/** CONNECT (a proxy tunnel, which this API is not): 405 as problem details, then the socket closes. */
export function refuseConnect(_request: IncomingMessage, socket: Duplex): void {
  if (socket.writable) socket.write(rawProblem(405, 'method-not-allowed', 'CONNECT is not supported.'))
  socket.destroy()
}
