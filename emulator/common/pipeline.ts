import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { ArmError } from './errors.ts'
import type { TlsMaterial } from './tls.ts'

// The request pipeline every emulated service shares: request and correlation ids, the request log,
// and Azure-shaped answers for what is not implemented and for unexpected failures.

export type ServiceName = 'login' | 'keyvault' | 'arm' | 'graph'

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
      : 'login'
}

export function createServiceApp(
  service: ServiceName | ((path: string) => ServiceName),
  tls: TlsMaterial,
  log: RequestLog,
): FastifyInstance {
  const nameOf = (url: string) => (typeof service === 'function' ? service(url) : service)
  const app = Fastify({ https: { key: tls.key, cert: tls.cert }, logger: false, bodyLimit: 4 * 1024 * 1024 })

  app.addHook('onRequest', async (request, reply) => {
    const correlation = request.headers['x-ms-correlation-request-id'] ?? request.headers['x-ms-client-request-id']
    reply.header('x-ms-request-id', randomUUID())
    reply.header('x-ms-correlation-request-id', typeof correlation === 'string' ? correlation : randomUUID())
  })

  app.addHook('onResponse', async (request, reply) => {
    log.add({
      at: new Date().toISOString(),
      service: nameOf(request.url),
      method: request.method,
      path: request.url.split('?')[0] ?? request.url,
      status: reply.statusCode,
      authorization: request.headers.authorization !== undefined,
      auxiliaryTokens: countAuxiliary(request.headers['x-ms-authorization-auxiliary']),
    })
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
