import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { BrokerMetrics } from '../metrics/broker-metrics.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The broker's Prometheus metrics, for the services that record into them. */
    metrics: BrokerMetrics
  }
}

export const METRICS_PATH = '/metrics'

// Requests that matched no route (404s, requests refused before routing) share one label: raw URLs
// as label values would let any caller create series without bound.
const UNMATCHED_ROUTE = 'unmatched'

export interface MetricsOptions {
  metrics: BrokerMetrics
}

/**
 * Prometheus metrics at /metrics, without authentication like the probes (scrapers carry no Entra
 * token) and outside the OpenAPI document. Every other response is counted by its route template.
 */
export default fp<MetricsOptions>(
  async function metricsPlugin(app: FastifyInstance, { metrics }) {
    app.decorate('metrics', metrics)
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url
      // The scraper's own requests would only measure the scraper.
      if (route === METRICS_PATH) return
      metrics.observeHttpRequest(request.method, route ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000)
    })
    app.get(METRICS_PATH, { schema: { hide: true } }, async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()),
    )
  },
  { name: 'metrics' },
)
