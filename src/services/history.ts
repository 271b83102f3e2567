import type { Readable } from 'node:stream'
import type { PrismaClient } from '../db/client.ts'
import { Prisma } from '../db/generated/client.ts'
import type { AllocationState } from '../db/generated/enums.ts'
import type { RowStreamer } from '../db/row-stream.ts'
import type { Caller } from './audit.ts'
import { ProblemError } from './errors.ts'
import { seesEverything } from './grants.ts'
import { parseCidr, parseIpAddress } from './network-address.ts'
import { notFound } from './tenant-registry.ts'

// The SRE's questions, answered from the ledger: who holds an address, who held it when, what a
// team took, in pages that cost what they return and exports that stream in constant memory.
// Requesters see their own allocations only; Readers and Admins see all.

export const ALLOCATION_SORTS = [
  'createdAt',
  '-createdAt',
  'allocatedAt',
  '-allocatedAt',
  'releasedAt',
  '-releasedAt',
] as const
export type AllocationSort = (typeof ALLOCATION_SORTS)[number]

export interface AllocationFilter {
  /** The managed tenant's Entra tenant id. */
  tenantId?: string
  subscriptionId?: string
  poolId?: string
  team?: string
  requesterOid?: string
  state?: AllocationState
  virtualNetworkId?: string
  createdFrom?: string
  createdTo?: string
  releasedFrom?: string
  releasedTo?: string
  /** Allocations that held their prefixes at this instant: allocated at or before it, not released by it. */
  activeAt?: string
  /** Allocations with a prefix containing this address. */
  containsIp?: string
  /** Allocations with a prefix overlapping this CIDR (containing it, inside it or equal). */
  overlaps?: string
}

export interface AllocationView {
  id: string
  state: AllocationState
  tenantId: string
  subscriptionId: string
  resourceGroup: string
  vnetName: string
  vnetResourceId: string
  virtualNetworkId: string
  poolId: string
  prefixes: string[]
  requestedSize: string
  team: string | null
  ticket: string | null
  requesterOid: string
  operationId: string
  createdAt: string
  allocatedAt: string | null
  releasedAt: string | null
}

export interface AllocationEventView {
  id: string
  type: string
  at: string
  actor: string
  operationId: string | null
  prefixes: string[]
  armRequestId: string | null
  armCorrelationId: string | null
  detail: unknown
}

export interface PrefixHolding {
  prefix: string
  /** How the held prefix relates to the one asked about. */
  relation: 'equal' | 'contains' | 'within'
  heldFrom: string
  heldUntil: string | null
  allocation: AllocationView
}

export type ExportFormat = 'csv' | 'ndjson'

// Sort keys: the column, and whether it can be empty. An empty timestamp (not yet allocated, not yet
// released) sorts as the far future: last going up, first going down.
const SORT_KEYS = {
  createdAt: { column: Prisma.raw('a.created_at'), nullable: false },
  allocatedAt: { column: Prisma.raw('a.allocated_at'), nullable: true },
  releasedAt: { column: Prisma.raw('a.released_at'), nullable: true },
} as const

export interface Cursor {
  sort: AllocationSort
  key: string | null
  id: string
}

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
const PREFIXES = `ARRAY(SELECT p.prefix::cidr::text FROM allocation_prefix p WHERE p.allocation_id = a.id ORDER BY p.prefix)`

// One list of columns for pages (JSON through Prisma) and exports (lines built by Postgres). Exports
// read each allocation's prefixes once, through a lateral join (px.list), not once per output form.
// `free` marks the free text a caller wrote (team, ticket): the only fields that can hold a comma or a
// quote. Names, ARM ids, uuids, CIDRs and timestamps cannot.
const COLUMNS: readonly { name: keyof AllocationView; sql: string; exported?: string; free?: boolean }[] = [
  { name: 'id', sql: 'a.id::text' },
  { name: 'state', sql: 'a.state::text' },
  { name: 'tenantId', sql: 'mt.tenant_id::text' },
  { name: 'subscriptionId', sql: 'a.subscription_id::text' },
  { name: 'resourceGroup', sql: 'a.resource_group' },
  { name: 'vnetName', sql: 'a.vnet_name' },
  { name: 'vnetResourceId', sql: 'a.vnet_resource_id' },
  { name: 'virtualNetworkId', sql: 'a.virtual_network_id::text' },
  { name: 'poolId', sql: 'a.pool_id' },
  { name: 'prefixes', sql: PREFIXES, exported: "coalesce(px.list, '{}')" },
  { name: 'requestedSize', sql: 'a.requested_size::text' },
  { name: 'team', sql: 'a.team', free: true },
  { name: 'ticket', sql: 'a.ticket', free: true },
  { name: 'requesterOid', sql: 'a.requester_oid' },
  { name: 'operationId', sql: 'a.operation_id::text' },
  { name: 'createdAt', sql: iso('a.created_at') },
  { name: 'allocatedAt', sql: iso('a.allocated_at') },
  { name: 'releasedAt', sql: iso('a.released_at') },
]

const SELECT = Prisma.raw(
  `SELECT ${COLUMNS.map((c) => `${c.sql} AS "${c.name}"`).join(', ')}, a.id AS cursor_id FROM allocation a JOIN managed_tenant mt ON mt.id = a.managed_tenant_id`,
)
const EXPORT_FROM = Prisma.raw(
  `FROM allocation a JOIN managed_tenant mt ON mt.id = a.managed_tenant_id
   LEFT JOIN LATERAL (SELECT array_agg(p.prefix::cidr::text ORDER BY p.prefix) AS list
                        FROM allocation_prefix p WHERE p.allocation_id = a.id) px ON TRUE`,
)

// RFC 4180 quoting, done by Postgres so the export never materialises rows in JavaScript. Every
// field is coalesced: concat_ws would drop a NULL and shift the columns after it.
const csvField = ({ name, sql, free }: (typeof COLUMNS)[number]) =>
  name === 'prefixes'
    ? `coalesce(array_to_string(px.list, ' '), '')`
    : free
      ? `CASE WHEN ${sql} ~ '[",\r\n]' THEN '"' || replace(${sql}, '"', '""') || '"' ELSE coalesce(${sql}, '') END`
      : `coalesce(${sql}, '')`
export const CSV_HEADER = COLUMNS.map((c) => c.name).join(',')
const CSV_LINE = Prisma.raw(`concat_ws(',', ${COLUMNS.map(csvField).join(', ')})`)
const NDJSON_LINE = Prisma.raw(
  `json_build_object(${COLUMNS.map((c) => `'${c.name}', ${c.exported ?? c.sql}`).join(', ')})::text`,
)

type AllocationRow = AllocationView & { cursor_id: string }

function view(row: AllocationRow): AllocationView {
  const { cursor_id: _, ...rest } = row
  return rest
}

function invalid(code: string, title: string, detail: string): ProblemError {
  return new ProblemError(400, code, title, detail)
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.sort, cursor.key, cursor.id])).toString('base64url')
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

function decodeCursor(text: string, sort: AllocationSort): Cursor {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    !ALLOCATION_SORTS.includes(parsed[0] as AllocationSort) ||
    !(parsed[1] === null || (typeof parsed[1] === 'string' && ISO.test(parsed[1]))) ||
    typeof parsed[2] !== 'string' ||
    !GUID.test(parsed[2])
  ) {
    throw invalid('invalid-cursor', 'Invalid cursor', 'cursor is not one this API handed out; start again without it.')
  }
  const [cursorSort, key, id] = parsed as [AllocationSort, string | null, string]
  if (cursorSort !== sort) {
    throw invalid(
      'invalid-cursor',
      'Invalid cursor',
      `cursor belongs to a listing sorted by ${cursorSort}, not ${sort}; keep the same sort while paging.`,
    )
  }
  return { sort, key, id }
}

function instant(value: string, parameter: string): Date {
  const date = new Date(value)
  if (Number.isNaN(date.getTime())) {
    throw invalid(
      'invalid-time',
      'Invalid time',
      `${parameter} must be an RFC 3339 date-time, e.g. 2026-03-01T00:00:00Z.`,
    )
  }
  return date
}

/** Who sees what: Requesters their own allocations, Readers and Admins all. */
export interface HistoryScope {
  requesterOid?: string
}

// The queries, as pure functions of their inputs, so that the EXPLAIN test and the benchmark run
// exactly what the API runs.

/** The filter as SQL conditions on `a` (allocation), each one an index can serve. */
export function historyWhere(scope: HistoryScope, filter: AllocationFilter): Prisma.Sql {
  const conditions: Prisma.Sql[] = [Prisma.sql`TRUE`]
  if (scope.requesterOid) conditions.push(Prisma.sql`a.requester_oid = ${scope.requesterOid}`)
  if (filter.tenantId) {
    conditions.push(
      Prisma.sql`a.managed_tenant_id = (SELECT id FROM managed_tenant WHERE tenant_id = ${filter.tenantId.toLowerCase()}::uuid)`,
    )
  }
  if (filter.subscriptionId) {
    conditions.push(Prisma.sql`a.subscription_id = ${filter.subscriptionId.toLowerCase()}::uuid`)
  }
  if (filter.poolId) conditions.push(Prisma.sql`a.pool_id = ${filter.poolId}`)
  if (filter.team !== undefined) conditions.push(Prisma.sql`a.team = ${filter.team}`)
  if (filter.requesterOid) conditions.push(Prisma.sql`a.requester_oid = ${filter.requesterOid.toLowerCase()}`)
  if (filter.state) conditions.push(Prisma.sql`a.state = ${filter.state}::allocation_state`)
  if (filter.virtualNetworkId) {
    conditions.push(Prisma.sql`a.virtual_network_id = ${filter.virtualNetworkId.toLowerCase()}::uuid`)
  }
  if (filter.createdFrom) conditions.push(Prisma.sql`a.created_at >= ${instant(filter.createdFrom, 'createdFrom')}`)
  if (filter.createdTo) conditions.push(Prisma.sql`a.created_at < ${instant(filter.createdTo, 'createdTo')}`)
  if (filter.releasedFrom) {
    conditions.push(Prisma.sql`a.released_at >= ${instant(filter.releasedFrom, 'releasedFrom')}`)
  }
  if (filter.releasedTo) conditions.push(Prisma.sql`a.released_at < ${instant(filter.releasedTo, 'releasedTo')}`)
  if (filter.activeAt) {
    const at = instant(filter.activeAt, 'activeAt')
    // The range is the expression of the allocation_held_during_idx GiST index (and of its extended
    // statistics). An allocation is created before it is allocated: the created_at bound lets a page in
    // created_at order start at T instead of at the newest allocation.
    conditions.push(
      Prisma.sql`a.allocated_at IS NOT NULL AND tstzrange(a.allocated_at, a.released_at, '[)') @> ${at}::timestamptz AND a.created_at <= ${at}`,
    )
  }
  if (filter.containsIp) {
    const ip = parseIpAddress(filter.containsIp, 'containsIp')
    conditions.push(
      Prisma.sql`a.id IN (SELECT p.allocation_id FROM allocation_prefix p WHERE p.prefix >>= ${ip}::inet)`,
    )
  }
  if (filter.overlaps) {
    const cidr = parseCidr(filter.overlaps, 'overlaps')
    conditions.push(
      Prisma.sql`a.id IN (SELECT p.allocation_id FROM allocation_prefix p WHERE p.prefix && ${cidr}::inet)`,
    )
  }
  return Prisma.join(conditions, ' AND ')
}

/**
 * A page after `cursor`, as the queries to run in turn until `take` rows are found: keyed rows in key
 * order, and (for a timestamp that can be empty) the empty ones by id — last going up, first going down.
 * Each is an index range scan in sort order: a page costs the rows it returns.
 */
export function pageQueries(
  where: Prisma.Sql,
  sort: AllocationSort,
  cursor: Cursor | undefined,
): ((take: number) => Prisma.Sql)[] {
  const descending = sort.startsWith('-')
  const { column, nullable } = SORT_KEYS[sortKey(sort)]
  const dir = Prisma.raw(descending ? 'DESC' : 'ASC')
  const after = Prisma.raw(descending ? '<' : '>')
  const keyed = (take: number) =>
    Prisma.sql`${SELECT} WHERE ${where}${nullable ? Prisma.sql` AND ${column} IS NOT NULL` : Prisma.empty}${
      cursor?.key
        ? Prisma.sql` AND (${column}, a.id) ${after} (${new Date(cursor.key)}::timestamptz, ${cursor.id}::uuid)`
        : Prisma.empty
    } ORDER BY ${column} ${dir}, a.id ${dir} LIMIT ${take}`
  const empty = (take: number) =>
    Prisma.sql`${SELECT} WHERE ${where} AND ${column} IS NULL${
      cursor && cursor.key === null ? Prisma.sql` AND a.id ${after} ${cursor.id}::uuid` : Prisma.empty
    } ORDER BY a.id ${dir} LIMIT ${take}`
  if (!nullable) return [keyed]
  if (!descending) return [...(!cursor || cursor.key !== null ? [keyed] : []), empty]
  return [...(!cursor || cursor.key === null ? [empty] : []), keyed]
}

/** Every matching row in sort order, one line of text each, built by Postgres. */
export function exportQuery(where: Prisma.Sql, sort: AllocationSort, format: ExportFormat): Prisma.Sql {
  const descending = sort.startsWith('-')
  const { column } = SORT_KEYS[sortKey(sort)]
  // Empty timestamps sort as the far future, as in pages.
  const order = Prisma.raw(descending ? 'DESC NULLS FIRST' : 'ASC NULLS LAST')
  const dir = Prisma.raw(descending ? 'DESC' : 'ASC')
  return Prisma.sql`SELECT ${format === 'csv' ? CSV_LINE : NDJSON_LINE} ${EXPORT_FROM} WHERE ${where} ORDER BY ${column} ${order}, a.id ${dir}`
}

/** Holders of prefixes overlapping `cidr` (already validated), in the order they took them. */
export function prefixHistoryQuery(where: Prisma.Sql, cidr: string, take: number): Prisma.Sql {
  return Prisma.sql`SELECT h.prefix AS held, h.relation, q.* FROM (
      SELECT p.allocation_id, p.prefix::cidr::text AS prefix,
             CASE WHEN p.prefix = ${cidr}::inet THEN 'equal' WHEN p.prefix >> ${cidr}::inet THEN 'contains' ELSE 'within' END AS relation
        FROM allocation_prefix p WHERE p.prefix && ${cidr}::inet) h
    CROSS JOIN LATERAL (${SELECT} WHERE ${where} AND a.id = h.allocation_id) q
    ORDER BY q."allocatedAt" NULLS LAST, q.cursor_id, h.prefix
    LIMIT ${take}`
}

const sortKey = (sort: AllocationSort) => (sort.startsWith('-') ? sort.slice(1) : sort) as keyof typeof SORT_KEYS

export interface HistoryServiceOptions {
  prisma: PrismaClient
  streams: RowStreamer
  /** Pool ids as registered (ARM ids are case-insensitive; the ledger stores the registered spelling). */
  registeredPoolIds: () => Promise<string[]>
}

export class HistoryService {
  readonly #prisma: PrismaClient
  readonly #streams: RowStreamer
  readonly #registeredPoolIds: () => Promise<string[]>

  constructor({ prisma, streams, registeredPoolIds }: HistoryServiceOptions) {
    this.#prisma = prisma
    this.#streams = streams
    this.#registeredPoolIds = registeredPoolIds
  }

  /** One page, in sort order, and the cursor of the next page if there is one (keyset: stable under inserts). */
  async list(
    caller: Caller,
    filter: AllocationFilter,
    sort: AllocationSort,
    limit: number,
    cursorText?: string,
  ): Promise<{ value: AllocationView[]; next: string | null }> {
    const cursor = cursorText === undefined ? undefined : decodeCursor(cursorText, sort)
    const where = await this.#where(caller, filter)
    const rows: AllocationRow[] = []
    for (const query of pageQueries(where, sort, cursor)) {
      if (rows.length > limit) break
      rows.push(...(await this.#prisma.$queryRaw<AllocationRow[]>(query(limit + 1 - rows.length))))
    }
    const value = rows.slice(0, limit)
    const last = value.at(-1)
    const next =
      rows.length > limit && last ? encodeCursor({ sort, key: last[sortKey(sort)], id: last.cursor_id }) : null
    return { value: value.map(view), next }
  }

  /** Every matching row, in sort order, as CSV (with a header) or NDJSON lines. */
  async export(
    caller: Caller,
    filter: AllocationFilter,
    sort: AllocationSort,
    format: ExportFormat,
  ): Promise<Readable> {
    const query = exportQuery(await this.#where(caller, filter), sort, format)
    return this.#streams.lines({ text: query.text, values: query.values }, format === 'csv' ? CSV_HEADER : undefined)
  }

  /** One allocation and its whole ledger timeline, oldest first. */
  async get(caller: Caller, id: string): Promise<AllocationView & { events: AllocationEventView[] }> {
    const [row] = await this.#prisma.$queryRaw<AllocationRow[]>(
      Prisma.sql`${SELECT} WHERE ${await this.#where(caller, {})} AND a.id = ${id}::uuid`,
    )
    if (!row) throw notFound('allocation', `No allocation ${id} is visible to you.`)
    const events = await this.#prisma.$queryRaw<AllocationEventView[]>(Prisma.sql`
      SELECT e.id::text AS id, e.type::text AS type, ${Prisma.raw(iso('e.at'))} AS at, e.actor,
             e.operation_id::text AS "operationId", ARRAY(SELECT unnest(e.prefixes)::cidr::text) AS prefixes,
             e.arm_request_id AS "armRequestId", e.arm_correlation_id AS "armCorrelationId", e.detail
        FROM allocation_event e WHERE e.allocation_id = ${id}::uuid ORDER BY e.at, e.id`)
    return { ...view(row), events: events.map((e) => ({ ...e, detail: e.detail ?? null })) }
  }

  /** Every holder of a prefix overlapping `cidr`, in the order they took it. */
  async prefixHistory(
    caller: Caller,
    cidrText: string,
    limit: number,
  ): Promise<{ prefix: string; value: PrefixHolding[]; truncated: boolean }> {
    const cidr = parseCidr(cidrText, 'cidr')
    const rows = await this.#prisma.$queryRaw<
      (AllocationRow & { held: string; relation: PrefixHolding['relation'] })[]
    >(prefixHistoryQuery(await this.#where(caller, {}), cidr, limit + 1))
    return {
      prefix: cidr,
      truncated: rows.length > limit,
      value: rows.slice(0, limit).map(({ held, relation, ...row }) => ({
        prefix: held,
        relation,
        heldFrom: row.allocatedAt ?? row.createdAt,
        heldUntil: row.releasedAt,
        allocation: view(row),
      })),
    }
  }

  async #where(caller: Caller, filter: AllocationFilter): Promise<Prisma.Sql> {
    const scope = seesEverything(caller) ? {} : { requesterOid: caller.oid }
    if (!filter.poolId) return historyWhere(scope, filter)
    const wanted = filter.poolId.toLowerCase()
    const registered = (await this.#registeredPoolIds()).find((id) => id.toLowerCase() === wanted)
    return historyWhere(scope, { ...filter, poolId: registered ?? filter.poolId })
  }
}
