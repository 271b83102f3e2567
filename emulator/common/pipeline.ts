import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Faults, StatusAction } from '../admin/faults.ts'
import { ArmError } from './errors.ts'
import type { TlsMaterial } from './tls.ts'

// The request pipeline every emulated service shares: request and correlation ids, the request log,
// injected faults, and Azure-shaped answers for what is not implemented and for unexpected failures.

/** 'admin' is the emulator's own API (/_emulator/...): never logged, never faulted. */
export type ServiceName = 'login' | 'keyvault' | 'arm' | 'graph' | 'admin'

export interface RequestLogEntry {
  at: string
  service: ServiceName
  method: string
  path: string
  status: number
  /** Which credentials came with the request; never their values. */
  authorization: boolean
  auxiliaryTokens: number
}

const MAX_LOG_ENTRIES = 10_000

export class RequestLog {
  readonly entries: RequestLogEntry[] = []

  add(entry: RequestLogEntry): void {
    this.entries.push(entry)
    if (this.entries.length > MAX_LOG_ENTRIES) this.entries.splice(0, this.entries.length - MAX_LOG_ENTRIES)
  }

  clear(): void {
    this.entries.length = 0
  }
}

function countAuxiliary(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header.join(',') : header
  return value ? value.split(',').filter((part) => part.trim()).length : 0
}

/** ARM and Entra share the emulator's main host (as one `az cloud register` endpoint); the path tells them apart. */
export function serviceOf(path: string): ServiceName {
  return /^\/(subscriptions|providers|tenants)(\/|\?|$)/i.test(path)
    ? 'arm'
    : /^\/v1\.0\//.test(path)
      ? 'graph'
      : /^\/_emulator(\/|\?|$)/.test(path)
        ? 'admin'
        : 'login'
}

const FAULT_CODES = { 429: 'TooManyRequests', 500: 'InternalServerError', 503: 'ServiceUnavailable' } as const

/** An injected error status, in the body shape of the service that "fails": Entra's OAuth error or ARM's envelope. */
function sendFault(reply: FastifyReply, service: ServiceName, { status, retryAfterSeconds }: StatusAction) {
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds))
  reply.code(status).header('content-type', 'application/json; charset=utf-8')
  if (service === 'login') {
    const code = status === 429 ? 50196 : 90033
    const description =
      status === 429
        ? 'The server terminated an operation because it encountered a client request loop.'
        : 'A transient error has occurred. Please try again.'
    return reply.send({
      error: status === 500 ? 'server_error' : 'temporarily_unavailable',
      error_description: `AADSTS${code}: ${description} (injected by the emulator)`,
      error_codes: [code],
      timestamp: new Date().toISOString(),
    })
  }
  return reply.send({
    error: { code: FAULT_CODES[status], message: `HTTP ${status} (injected by the emulator).` },
  })
}

export function createServiceApp(
  service: ServiceName | ((path: string) => ServiceName),
  tls: TlsMaterial,
  log: RequestLog,
  faults?: Faults,
): FastifyInstance {
  const nameOf = (url: string) => (typeof service === 'function' ? service(url) : service)
  const app = Fastify({ https: { key: tls.key, cert: tls.cert }, logger: false, bodyLimit: 4 * 1024 * 1024 })

  const logEntry = (request: FastifyRequest, status: number): RequestLogEntry => ({
    at: new Date().toISOString(),
    service: nameOf(request.url),
    method: request.method,
    path: request.url.split('?')[0] ?? request.url,
    status,
    authorization: request.headers.authorization !== undefined,
    auxiliaryTokens: countAuxiliary(request.headers['x-ms-authorization-auxiliary']),
  })

  app.addHook('onRequest', async (request, reply) => {
    const correlation = request.headers['x-ms-correlation-request-id'] ?? request.headers['x-ms-client-request-id']
    reply.header('x-ms-request-id', randomUUID())
    reply.header('x-ms-correlation-request-id', typeof correlation === 'string' ? correlation : randomUUID())
  })

  // Injected faults (emulator/admin/faults.ts), before any service's own hooks and handlers.
  app.addHook('onRequest', async (request, reply) => {
    const name = nameOf(request.url)
    if (!faults || name === 'admin') return
    const action = faults.take(name, request.method, request.url)
    if (!action) return
    switch (action.kind) {
      case 'status':
        return sendFault(reply, name, action)
      case 'drop':
        // Hang up without an answer: hijacked, so Fastify neither replies nor runs onResponse.
        log.add(logEntry(request, 0))
        reply.hijack()
        request.raw.socket.destroy()
        return reply
      case 'latency':
        await new Promise((resolve) => setTimeout(resolve, action.ms))
        return
      case 'lro-fail':
        // Applied when the response names its operation (the main app's onSend, emulator/index.ts).
        faults.markLroFailure(request.raw, action)
        return
    }
  })

  app.addHook('onResponse', async (request, reply) => {
    if (nameOf(request.url) === 'admin') return
    log.add(logEntry(request, reply.statusCode))
  })

  app.setNotFoundHandler(async (request, reply) =>
    reply.code(501).send({
      error: {
        code: 'NotImplemented',
        message: `The emulator does not implement ${request.method} ${request.url.split('?')[0]} on its ${nameOf(request.url)} endpoint.`,
      },
    }),
  )

  app.setErrorHandler(async (error: { statusCode?: number; message: string }, _request, reply) => {
    if (error instanceof ArmError) {
      return reply
        .code(error.status)
        .headers(error.headers)
        .send({ error: { code: error.code, message: error.message } })
    }
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500
    return reply.code(status).send({
      error: {
        code: status === 500 ? 'InternalServerError' : 'BadRequest',
        message: status === 500 ? 'The emulator failed to process the request.' : error.message,
      },
    })
  })
  return app
}
