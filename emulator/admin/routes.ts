import type { FastifyInstance } from 'fastify'
import { ArmError } from '../common/errors.ts'
import type { RequestLog, ServiceName } from '../common/pipeline.ts'
import type { EmulatorState } from '../state.ts'
import { FaultRuleError, type Faults, parseFaultRule } from './faults.ts'

// The emulator's own API, for tests and local tooling: health, the request log, counters, fault
// injection and settings. Served on the main host under /_emulator/ without authentication, as the
// emulator listens on localhost only. Its requests are neither logged nor faulted (pipeline.ts).

export interface AdminOptions {
  state: EmulatorState
  requestLog: RequestLog
  faults: Faults
}

const LOGGED_SERVICES: ServiceName[] = ['login', 'keyvault', 'arm', 'graph']

const badRequest = (code: string, message: string) => new ArmError(400, code, message)

export async function adminRoutes(app: FastifyInstance, { state, requestLog, faults }: AdminOptions) {
  app.get('/_emulator/health', async () => ({ status: 'ok' }))

  app.get<{ Querystring: { service?: string } }>('/_emulator/requests', async (request) => {
    const { service } = request.query
    if (service !== undefined && !(LOGGED_SERVICES as string[]).includes(service))
      throw badRequest('InvalidService', `service must be one of ${LOGGED_SERVICES.join(', ')}.`)
    return { value: requestLog.entries.filter((entry) => service === undefined || entry.service === service) }
  })

  app.delete('/_emulator/requests', async (_request, reply) => {
    requestLog.clear()
    return reply.code(204).send()
  })

  app.get('/_emulator/counters', async () => ({
    tokenRequests: Object.fromEntries(state.counters.tokenRequests),
    secretReads: Object.fromEntries(state.counters.secretReads),
  }))

  app.post('/_emulator/faults', async (request, reply) => {
    try {
      const rule = faults.add(parseFaultRule(request.body))
      return reply.code(201).send({ id: rule.id })
    } catch (err) {
      if (err instanceof FaultRuleError) throw badRequest('InvalidFaultRule', err.message)
      throw err
    }
  })

  app.get('/_emulator/faults', async () => ({ value: faults.list() }))

  app.delete('/_emulator/faults', async (_request, reply) => {
    faults.clear()
    return reply.code(204).send()
  })

  app.delete<{ Params: { id: string } }>('/_emulator/faults/:id', async (request, reply) => {
    if (!faults.remove(request.params.id))
      throw new ArmError(404, 'FaultRuleNotFound', `No fault rule has the id '${request.params.id}'.`)
    return reply.code(204).send()
  })

  const settings = () => ({ lroDurationMs: state.lroDurationMs, clockOffsetMs: state.clockOffsetMs })

  app.get('/_emulator/settings', async () => settings())

  app.put('/_emulator/settings', async (request) => {
    const body: unknown = request.body
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw badRequest('InvalidSettings', 'The body must be a JSON object: { lroDurationMs?, clockOffsetMs? }.')
    const { lroDurationMs, clockOffsetMs, ...rest } = body as Record<string, unknown>
    const unknown = Object.keys(rest)
    if (unknown.length) throw badRequest('InvalidSettings', `Unknown setting(s): ${unknown.join(', ')}.`)
    if (
      lroDurationMs !== undefined &&
      (typeof lroDurationMs !== 'number' || !Number.isSafeInteger(lroDurationMs) || lroDurationMs < 0)
    )
      throw badRequest('InvalidSettings', 'lroDurationMs must be a whole number of milliseconds, 0 or more.')
    if (clockOffsetMs !== undefined && (typeof clockOffsetMs !== 'number' || !Number.isSafeInteger(clockOffsetMs)))
      throw badRequest('InvalidSettings', 'clockOffsetMs must be a whole number of milliseconds (negative allowed).')
    if (lroDurationMs !== undefined) state.lroDurationMs = lroDurationMs
    if (clockOffsetMs !== undefined) state.clockOffsetMs = clockOffsetMs
    return settings()
  })
}
