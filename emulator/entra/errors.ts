import { randomUUID } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

// Entra ID's OAuth error body, as the token and discovery endpoints return it. The description
// carries the AADSTS code and the trace, correlation and timestamp lines real responses end with.

export type OAuthError =
  | 'invalid_request'
  | 'invalid_client'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_resource'
  | 'invalid_tenant'

export function sendAadError(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  error: OAuthError,
  code: number,
  description: string,
) {
  const traceId = randomUUID()
  const header = request.headers['client-request-id']
  const correlationId = typeof header === 'string' && /^[0-9a-f-]{36}$/i.test(header) ? header : randomUUID()
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z')
  return reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .send({
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    })
}
