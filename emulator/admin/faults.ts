import { randomUUID } from 'node:crypto'

// Fault injection for tests: rules that make the next N matching requests fail, hang up, slow down,
// or (for ARM's long-running operations) end Failed. Rules apply in the order they were added; a
// request takes at most one action, from the first rule that matches it.

export const FAULT_SERVICES = ['login', 'keyvault', 'arm', 'graph'] as const
export type FaultService = (typeof FAULT_SERVICES)[number]

export interface FaultMatch {
  service?: FaultService
  /** Compared case-insensitively (GET, PUT...). */
  method?: string
  /** A RegExp source, tested case-insensitively against the path without its query. */
  pathPattern?: string
}

export type FaultStatus = 429 | 500 | 503
export interface StatusAction {
  kind: 'status'
  status: FaultStatus
  retryAfterSeconds?: number
}
export interface DropAction {
  kind: 'drop'
}
export interface LatencyAction {
  kind: 'latency'
  ms: number
}
/** Only for ARM PUT and DELETE that start a long-running operation: the operation ends Failed. */
export interface LroFailAction {
  kind: 'lro-fail'
  code: string
  message: string
}
export type FaultAction = StatusAction | DropAction | LatencyAction | LroFailAction

export interface FaultRule {
  id: string
  match: FaultMatch
  action: FaultAction
  /** How many more matching requests the rule applies to; it is removed at 0. */
  remaining: number
}

export type NewFaultRule = Omit<FaultRule, 'id'>

const LRO_METHODS = new Set(['PUT', 'DELETE'])
const MAX_LATENCY_MS = 120_000
const MAX_RETRY_AFTER_SECONDS = 3600
const MAX_REMAINING = 1_000_000

export class FaultRuleError extends Error {}

interface StoredRule {
  rule: FaultRule
  pattern: RegExp | undefined
}

export class Faults {
  readonly #rules: StoredRule[] = []
  /** lro-fail actions taken by a request, until the response that starts the operation is sent. */
  readonly #lroFailures = new WeakMap<object, LroFailAction>()

  add(input: NewFaultRule): FaultRule {
    const rule: FaultRule = {
      id: randomUUID(),
      match: { ...input.match },
      action: { ...input.action },
      remaining: input.remaining,
    }
    const pattern = rule.match.pathPattern === undefined ? undefined : new RegExp(rule.match.pathPattern, 'i')
    this.#rules.push({ rule, pattern })
    return structuredClone(rule)
  }

  list(): FaultRule[] {
    return this.#rules.map(({ rule }) => structuredClone(rule))
  }

  remove(id: string): boolean {
    const index = this.#rules.findIndex(({ rule }) => rule.id === id)
    if (index < 0) return false
    this.#rules.splice(index, 1)
    return true
  }

  clear(): void {
    this.#rules.length = 0
  }

  /** The action for this request, if a rule matches it: counts the request against that rule. */
  take(service: string, method: string, path: string): FaultAction | undefined {
    const bare = path.split('?')[0] ?? path
    const verb = method.toUpperCase()
    const index = this.#rules.findIndex(({ rule, pattern }) => {
      const { match, action } = rule
      if (match.service !== undefined && match.service !== service) return false
      if (match.method !== undefined && match.method.toUpperCase() !== verb) return false
      if (pattern && !pattern.test(bare)) return false
      // A failed operation needs an operation: reads and actions never take an lro-fail rule.
      if (action.kind === 'lro-fail' && (service !== 'arm' || !LRO_METHODS.has(verb))) return false
      return true
    })
    const stored = this.#rules[index]
    if (!stored) return undefined
    stored.rule.remaining -= 1
    if (stored.rule.remaining <= 0) this.#rules.splice(index, 1)
    return { ...stored.rule.action }
  }

  /** Remembers, for the response, that this request (its raw message) should start a failing operation. */
  markLroFailure(request: object, action: LroFailAction): void {
    this.#lroFailures.set(request, action)
  }

  lroFailureFor(request: object): LroFailAction | undefined {
    return this.#lroFailures.get(request)
  }
}

// ---- validation of rules as the admin API receives them ----

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const isWholeNumber = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max

function onlyKeys(value: Record<string, unknown>, allowed: string[], where: string): void {
  const unknown = Object.keys(value).filter((name) => !allowed.includes(name))
  if (unknown.length) throw new FaultRuleError(`${where}: unknown field(s) ${unknown.join(', ')}.`)
}

function parseMatch(value: unknown): FaultMatch {
  if (value === undefined) return {}
  if (!isRecord(value)) throw new FaultRuleError('match must be an object.')
  onlyKeys(value, ['service', 'method', 'pathPattern'], 'match')
  const match: FaultMatch = {}
  if (value['service'] !== undefined) {
    const service = value['service']
    if (typeof service !== 'string' || !(FAULT_SERVICES as readonly string[]).includes(service))
      throw new FaultRuleError(`match.service must be one of ${FAULT_SERVICES.join(', ')}.`)
    match.service = service as FaultService
  }
  if (value['method'] !== undefined) {
    const method = value['method']
    if (typeof method !== 'string' || !/^[A-Za-z]+$/.test(method))
      throw new FaultRuleError('match.method must be an HTTP method such as GET or PUT.')
    match.method = method.toUpperCase()
  }
  if (value['pathPattern'] !== undefined) {
    const pathPattern = value['pathPattern']
    if (typeof pathPattern !== 'string' || !pathPattern)
      throw new FaultRuleError('match.pathPattern must be a non-empty RegExp source.')
    try {
      new RegExp(pathPattern, 'i')
    } catch (err) {
      throw new FaultRuleError(`match.pathPattern is not a valid RegExp: ${(err as Error).message}`)
    }
    match.pathPattern = pathPattern
  }
  return match
}

function parseAction(value: unknown): FaultAction {
  if (!isRecord(value)) throw new FaultRuleError('action must be an object with a kind.')
  switch (value['kind']) {
    case 'status': {
      onlyKeys(value, ['kind', 'status', 'retryAfterSeconds'], 'action')
      const status = value['status']
      if (status !== 429 && status !== 500 && status !== 503)
        throw new FaultRuleError('action.status must be 429, 500 or 503.')
      const retryAfter = value['retryAfterSeconds']
      if (retryAfter === undefined) return { kind: 'status', status }
      if (!isWholeNumber(retryAfter, 0, MAX_RETRY_AFTER_SECONDS))
        throw new FaultRuleError(
          `action.retryAfterSeconds must be a whole number from 0 to ${MAX_RETRY_AFTER_SECONDS}.`,
        )
      return { kind: 'status', status, retryAfterSeconds: retryAfter }
    }
    case 'drop':
      onlyKeys(value, ['kind'], 'action')
      return { kind: 'drop' }
    case 'latency': {
      onlyKeys(value, ['kind', 'ms'], 'action')
      const ms = value['ms']
      if (!isWholeNumber(ms, 0, MAX_LATENCY_MS))
        throw new FaultRuleError(`action.ms must be a whole number from 0 to ${MAX_LATENCY_MS}.`)
      return { kind: 'latency', ms }
    }
    case 'lro-fail': {
      onlyKeys(value, ['kind', 'code', 'message'], 'action')
      const { code, message } = value
      if (typeof code !== 'string' || !code) throw new FaultRuleError('action.code must be a non-empty string.')
      if (typeof message !== 'string' || !message)
        throw new FaultRuleError('action.message must be a non-empty string.')
      return { kind: 'lro-fail', code, message }
    }
    default:
      throw new FaultRuleError("action.kind must be 'status', 'drop', 'latency' or 'lro-fail'.")
  }
}

/** A rule from the admin API's JSON body; throws FaultRuleError with a message fit for a 400. */
export function parseFaultRule(body: unknown): NewFaultRule {
  if (!isRecord(body)) throw new FaultRuleError('The body must be a JSON object: { match, action, remaining }.')
  onlyKeys(body, ['match', 'action', 'remaining'], 'rule')
  const match = parseMatch(body['match'])
  const action = parseAction(body['action'])
  const remaining = body['remaining'] ?? 1
  if (!isWholeNumber(remaining, 1, MAX_REMAINING))
    throw new FaultRuleError(`remaining must be a whole number from 1 to ${MAX_REMAINING} (default 1).`)
  if (action.kind === 'lro-fail') {
    if (match.service !== undefined && match.service !== 'arm')
      throw new FaultRuleError("An lro-fail rule applies to ARM only: match.service must be 'arm' or absent.")
    if (match.method !== undefined && !LRO_METHODS.has(match.method))
      throw new FaultRuleError('An lro-fail rule applies to PUT and DELETE only.')
  }
  return { match, action, remaining }
}
