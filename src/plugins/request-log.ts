import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

export const REQUEST_ID_HEADER = 'x-request-id'

/** Echoes the request id and writes exactly one log line per request, when the response is sent. */
export default fp(
  async function requestLog(app: FastifyInstance) {
    app.addHook('onRequest', async (request, reply) => {
      reply.header(REQUEST_ID_HEADER, request.id)
    })
    app.addHook('onResponse', async (request, reply) => {
      request.log.info(
        {
          method: request.method,
          // The path only: query strings are the caller's and may carry anything.
          path: request.url.split('?')[0],
          route: request.routeOptions.url,
          statusCode: reply.statusCode,
          responseTime: Math.round(reply.elapsedTime * 100) / 100,
          remoteAddress: request.ip,
        },
        'request completed',
      )
    })
  },
  { name: 'request-log' },
)
