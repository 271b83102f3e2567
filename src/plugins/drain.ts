import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * On close, Fastify stops accepting and drops idle keep-alive connections, but a connection whose
 * request is still in flight would stay open (keep-alive) after its response and hold the process
 * until the keep-alive timeout. Responses sent while closing therefore end their connection.
 */
export default fp(
  async function drain(app: FastifyInstance) {
    let closing = false
    app.addHook('preClose', async () => {
      closing = true
    })
    app.addHook('onSend', async (_request, reply, payload) => {
      if (closing) reply.header('connection', 'close')
      return payload
    })
  },
  { name: 'drain' },
)
