// A synthetic allocation ledger for the history benchmark (bench/history.ts) and the export test
// (test/routes/v1/history-export.test.ts): N allocations with their VNets, deploy operations, prefixes
// and ledger events, written by a few set-based statements (INSERT … SELECT FROM generate_series).
//
// The shape, the same for a given N (every draw is a hash of the row number; only the uuids and the
// anchor, now, differ from run to run):
// - created over the 3 years before now, the rate growing linearly (3x from first to last month);
// - tenants B (65%) and C (35%) of the demo registry, each with several subscriptions and pools;
// - ~50 teams, skewed (the biggest holds ~14%, the smallest ~1%), 4% without;
// - ~400 requesters, skewed;
// - 4% failed (no prefix), the last two days' allocations partly still requested or deploying;
// - all the others hold one prefix from a slot: a /26 or (5% of blocks) a /24 of 10.0.0.0/8,
//   scattered over the whole /8, or an IPv6 /64 under fd42::/16 (30% of the slots, more once 10/8 is
//   used up: 37% at 1,000,000 rows). Each slot is held in turn by ~2.4 allocations: every holder but the last
//   released it before the next one took it; the last holder still holds it (93%), is releasing it
//   (2%) or released it too — so ~61% of all allocations end released, ~34% active;
// - ledger events as the broker writes them: requested, deploying, then allocated / failed, releasing,
//   released (~4.2 per allocation).
import pg from 'pg'
import { DEMO_IDS } from '../emulator/demo-broker.ts'

export const SEED_TEAMS: readonly string[] = [
  'retail',
  'payments',
  'logistics',
  'platform',
  'data',
  'identity',
  'search',
  'checkout',
  'warehouse',
  'analytics',
  'mobile',
  'web',
  'billing',
  'fraud',
  'marketing',
  'crm',
  'erp',
  'hr',
  'finance',
  'security',
  'observability',
  'messaging',
  'pricing',
  'inventory',
  'catalog',
  'recommendations',
  'loyalty',
  'support',
  'returns',
  'shipping',
  'fleet',
  'routing',
  'forecasting',
  'ml-platform',
  'edge',
  'cdn',
  'dns',
  'network',
  'storage',
  'backup',
  'devtools',
  'ci',
  'qa',
  'sandbox',
  'partners',
  'legal',
  'procurement',
  'facilities',
  'research',
  'labs',
]

const SUBSCRIPTIONS = {
  B: [
    DEMO_IDS.subscriptionB,
    'b1b1b1b1-0000-4000-8000-0000000000b2',
    'b1b1b1b1-0000-4000-8000-0000000000b3',
    'b1b1b1b1-0000-4000-8000-0000000000b4',
    'b1b1b1b1-0000-4000-8000-0000000000b5',
  ],
  C: [DEMO_IDS.subscriptionC, 'c1c1c1c1-0000-4000-8000-0000000000c2', 'c1c1c1c1-0000-4000-8000-0000000000c3'],
}

const pool = (name: string) => `${DEMO_IDS.networkManagerId}/ipamPools/${name}`
const POOLS = {
  B: { v4: [pool('pool-retail'), pool('pool-retail-dmz')], v6: [pool('pool-retail-v6')] },
  C: { v4: [pool('pool-logistics'), pool('pool-logistics-edge')], v6: [pool('pool-logistics-v6')] },
}

/** The /26 and /24 slots 10.0.0.0/8 has room for (65,536 /24 blocks, 5% whole, the rest as four /26s). */
const V4_BLOCKS = 65_536
const WHOLE_BLOCK_SHARE = 0.05
const V4_CAPACITY = Math.floor(V4_BLOCKS * (WHOLE_BLOCK_SHARE + 4 * (1 - WHOLE_BLOCK_SHARE)))
/** Slots per allocation: 0.4 gives ~2.4 holders per slot (Poisson), and ~36% of allocations holding at the end. */
const SLOTS_PER_ALLOCATION = 0.4
const V6_SHARE_WANTED = 0.3
const TABLES = ['virtual_network', 'operation', 'allocation', 'allocation_prefix', 'allocation_event'] as const

/** Builds the indexes on two connections at once (GiST builds are single-threaded; btree ones use parallel workers). */
async function rebuild(connectionString: string, indexes: { definition: string }[]): Promise<void> {
  // The longest (GiST) first, so that they do not end up last on one connection.
  const queue = [...indexes].sort(
    (a, b) => Number(/USING gist/i.test(b.definition)) - Number(/USING gist/i.test(a.definition)),
  )
  await Promise.all(
    [0, 1].map(async () => {
      const client = new pg.Client({ connectionString })
      await client.connect()
      try {
        await client.query("SET maintenance_work_mem = '256MB'")
        for (let index = queue.shift(); index; index = queue.shift()) await client.query(index.definition)
      } finally {
        await client.end()
      }
    }),
  )
}

export interface SeedOptions {
  /** How many allocations. */
  allocations: number
  /** Progress lines (phases and their times). */
  log?: (line: string) => void
  /** VACUUM ANALYZE the tables afterwards (default true). */
  analyze?: boolean
}

export interface SeedResult {
  allocations: number
  prefixes: number
  events: number
  /** IPv4 and IPv6 prefix slots (each held in turn by several allocations). */
  slots: { v4: number; v6: number }
  /** Whether foreign keys were checked row by row (false: session_replication_role = replica, as superuser). */
  foreignKeysChecked: boolean
  seconds: number
  phases: { name: string; seconds: number }[]
}

/**
 * Fills an empty, migrated database on which the broker has registered the demo tenants (B and C).
 * Loads as pg_restore does: secondary indexes dropped and rebuilt after; and, as a superuser, without
 * the row-by-row foreign key checks (session_replication_role = replica; the rows are consistent by
 * construction). Each roughly halves the time. Not for a database anything else is using meanwhile.
 */
export async function seedHistory(connectionString: string, options: SeedOptions): Promise<SeedResult> {
  const n = Math.floor(options.allocations)
  if (!(n >= 1)) throw new Error(`seedHistory: allocations must be at least 1, not ${options.allocations}`)
  const log = options.log ?? (() => undefined)
  const client = new pg.Client({ connectionString })
  await client.connect()
  const phases: SeedResult['phases'] = []
  const started = performance.now()
  const timed = async <T>(name: string, work: () => Promise<T>, count?: (result: T) => number | null) => {
    const t0 = performance.now()
    const result = await work()
    const seconds = (performance.now() - t0) / 1000
    phases.push({ name, seconds })
    const rows = count?.(result)
    log(`  ${name}: ${seconds.toFixed(1)} s${rows ? ` (${rows.toLocaleString('en')} rows)` : ''}`)
    return result
  }
  const phase = (name: string, text: string, values: unknown[] = []) =>
    timed(
      name,
      () => client.query(text, values),
      (result) => result.rowCount,
    )
  try {
    const tenants = new Map(
      (
        await client.query<{ id: string; tenant_id: string }>('SELECT id, tenant_id::text FROM managed_tenant')
      ).rows.map((r) => [r.tenant_id, r.id]),
    )
    const tenantB = tenants.get(DEMO_IDS.tenantB)
    const tenantC = tenants.get(DEMO_IDS.tenantC)
    if (!tenantB || !tenantC) {
      throw new Error(
        'seedHistory: the demo tenants B and C are not registered (start the broker on the database first)',
      )
    }
    const existing = await client.query<{ count: string }>('SELECT count(*)::text AS count FROM allocation')
    if (existing.rows[0]?.count !== '0') throw new Error('seedHistory: the database already holds allocations')

    const slots = Math.max(1, Math.round(n * SLOTS_PER_ALLOCATION))
    const v4Wanted = Math.min(V4_CAPACITY, Math.max(1, Math.round(slots * (1 - V6_SHARE_WANTED))))

    let foreignKeysChecked = true
    await client.query("SET session_replication_role = 'replica'").then(
      () => (foreignKeysChecked = false),
      () => undefined,
    )
    await client.query("SET work_mem = '256MB'")
    await client.query("SET maintenance_work_mem = '512MB'")
    // u(g, k): the k-th uniform draw in [0, 1) for row g.
    await client.query(`CREATE FUNCTION pg_temp.u(g bigint, k bigint) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
      AS $$ SELECT (hashint8extended(g, k) & 4503599627370495)::float8 / 4503599627370496 $$`)

    // IPv4 slots: /24 blocks of 10.0.0.0/8 in a scattered order (an odd multiplier permutes them), each
    // one /24 or four /26s; then IPv6 /64s for the rest.
    const v4Slots = await phase(
      'prefix slots',
      `CREATE TEMP TABLE seed_slot AS
       SELECT (row_number() OVER (ORDER BY b, k) - 1)::int AS slot, prefix, size
         FROM (SELECT b, (b::bigint * 40503) % ${V4_BLOCKS} AS block, pg_temp.u(b, 100) < ${WHOLE_BLOCK_SHARE} AS whole
                 FROM generate_series(0, ${V4_BLOCKS - 1}) b) blocks
         CROSS JOIN LATERAL (
           SELECT k, CASE WHEN whole THEN set_masklen('10.0.0.0'::inet + block * 256, 24)
                          ELSE set_masklen('10.0.0.0'::inet + (block * 256 + k * 64), 26) END AS prefix,
                     CASE WHEN whole THEN 256 ELSE 64 END::numeric AS size
             FROM generate_series(0, CASE WHEN whole THEN 0 ELSE 3 END) k) p
        ORDER BY b, k
        LIMIT ${v4Wanted}`,
    )
    const v4 = v4Slots.rowCount ?? 0
    const v6 = Math.max(1, slots - v4)
    await client.query(
      `INSERT INTO seed_slot (slot, prefix, size)
       SELECT ${v4} + j, ('fd42:' || to_hex((h >> 16) & 65535) || ':' || to_hex(h & 65535) || '::/64')::inet, 18446744073709551616
         FROM generate_series(0, ${v6 - 1}) j, LATERAL (SELECT (j::bigint * 2654435761) % 4294967296 AS h) x`,
    )
    await client.query('CREATE UNIQUE INDEX ON seed_slot (slot)')

    const end = "date_trunc('minute', now()) - interval '10 minutes'"
    await phase(
      'plan allocations',
      `CREATE TEMP TABLE seed AS
       WITH base AS (
         SELECT g,
                date_trunc('milliseconds', ${end} - interval '1095 days'
                  + ((sqrt(1 + 8 * ((g - 1 + pg_temp.u(g, 1)) / $1::float8)) - 1) / 2) * interval '1095 days') AS created_at,
                pg_temp.u(g, 2) AS u_kind, pg_temp.u(g, 3) AS u_recent, pg_temp.u(g, 4) AS u_family,
                pg_temp.u(g, 5) AS u_slot, pg_temp.u(g, 6) AS u_tenant, pg_temp.u(g, 7) AS u_sub,
                pg_temp.u(g, 8) AS u_team, pg_temp.u(g, 9) AS u_requester, pg_temp.u(g, 10) AS u_deploy,
                pg_temp.u(g, 11) AS u_release, pg_temp.u(g, 12) AS u_last, pg_temp.u(g, 13) AS u_pool,
                pg_temp.u(g, 14) AS u_ticket
           FROM generate_series(1, $1::int) g
       ), kinds AS (
         SELECT *,
                CASE WHEN u_kind < 0.04 THEN 'failed'
                     WHEN created_at > ${end} - interval '2 days' AND u_recent < 0.3
                       THEN CASE WHEN u_recent < 0.15 THEN 'requested' ELSE 'deploying' END
                     ELSE 'holder' END AS kind,
                u_family < ${v6 / (v4 + v6)} AS v6
           FROM base
       ), slotted AS (
         SELECT *,
                CASE WHEN kind <> 'holder' THEN NULL
                     WHEN v6 THEN ${v4} + floor(u_slot * ${v6})::int
                     ELSE floor(u_slot * ${v4})::int END AS slot
           FROM kinds
       ), chained AS (
         SELECT s.*, p.prefix, p.size,
                -- Tenant and pool follow the slot: a prefix goes back to its pool and comes out of it again.
                CASE WHEN slot IS NULL THEN u_tenant < 0.65 ELSE pg_temp.u(slot, 200) < 0.65 END AS in_b,
                CASE WHEN slot IS NULL THEN u_pool ELSE pg_temp.u(slot, 201) END AS pool_draw,
                lead(created_at) OVER (PARTITION BY slot ORDER BY created_at, g) AS next_created,
                date_trunc('milliseconds', created_at + (20 + 280 * u_deploy) * interval '1 second') AS deployed_at
           FROM slotted s LEFT JOIN seed_slot p USING (slot)
       ), timed AS (
         SELECT *,
                CASE WHEN kind <> 'holder' THEN NULL
                     -- Released before the next holder took the slot.
                     WHEN next_created IS NOT NULL
                       THEN date_trunc('milliseconds', deployed_at + greatest(next_created - deployed_at, interval '0') * (0.05 + 0.9 * u_release))
                     WHEN u_last < 0.05
                       THEN date_trunc('milliseconds', deployed_at + greatest(${end} - deployed_at, interval '0') * u_release)
                     END AS released,
                CASE WHEN kind = 'holder' AND next_created IS NULL AND u_last >= 0.05 AND u_last < 0.07
                     THEN date_trunc('milliseconds', deployed_at + greatest(${end} - deployed_at, interval '0') * u_release)
                     END AS releasing
           FROM chained
       )
       SELECT g, gen_random_uuid() AS id, gen_random_uuid() AS vnet_id, gen_random_uuid() AS op_id,
              CASE WHEN in_b THEN $2::uuid ELSE $3::uuid END AS managed_tenant_id,
              CASE WHEN in_b THEN ($4::uuid[])[1 + floor(array_length($4::uuid[], 1) * u_sub ^ 1.5)::int]
                   ELSE ($5::uuid[])[1 + floor(array_length($5::uuid[], 1) * u_sub ^ 1.5)::int] END AS subscription_id,
              CASE WHEN in_b AND v6 THEN ($6::text[])[1 + floor(array_length($6::text[], 1) * pool_draw)::int]
                   WHEN in_b THEN ($7::text[])[1 + floor(array_length($7::text[], 1) * pool_draw ^ 2)::int]
                   WHEN v6 THEN ($8::text[])[1 + floor(array_length($8::text[], 1) * pool_draw)::int]
                   ELSE ($9::text[])[1 + floor(array_length($9::text[], 1) * pool_draw ^ 2)::int] END AS pool_id,
              CASE WHEN u_team < 0.04 THEN NULL
                   ELSE ($10::text[])[1 + floor(array_length($10::text[], 1) * ((u_team - 0.04) / 0.96) ^ 2)::int] END AS team,
              lpad(to_hex(r), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(r), 12, '0') AS requester_oid,
              CASE WHEN u_ticket < 0.5 THEN 'CHG' || (1000000 + g) END AS ticket,
              prefix, coalesce(size, CASE WHEN v6 THEN 18446744073709551616 ELSE 64 END) AS requested_size,
              created_at,
              CASE WHEN kind = 'holder' THEN deployed_at END AS allocated_at,
              released AS released_at,
              coalesce(released, releasing) AS releasing_at,
              CASE WHEN kind <> 'holder' THEN kind
                   WHEN released IS NOT NULL THEN 'released'
                   WHEN releasing IS NOT NULL THEN 'releasing'
                   ELSE 'active' END AS state
         FROM timed, LATERAL (SELECT 1 + floor(400 * u_requester ^ 2)::int AS r) requester
        ORDER BY g`,
      [
        n,
        tenantB,
        tenantC,
        SUBSCRIPTIONS.B,
        SUBSCRIPTIONS.C,
        POOLS.B.v6,
        POOLS.B.v4,
        POOLS.C.v6,
        POOLS.C.v4,
        SEED_TEAMS,
      ],
    )

    // Bulk load as pg_restore does: the secondary indexes (their definitions as the migrations made them)
    // are dropped, the rows written, and the indexes built again — twice as fast as maintaining them.
    const indexes = (
      await client.query<{ name: string; definition: string }>(
        `SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
          WHERE t.relname = ANY($1) AND t.relnamespace = 'public'::regnamespace AND NOT i.indisunique`,
        [[...TABLES]],
      )
    ).rows
    for (const index of indexes) await client.query(`DROP INDEX ${index.name}`)

    const resourceId = `'/subscriptions/' || subscription_id || '/resourceGroups/' || rg || '/providers/Microsoft.Network/virtualNetworks/' || name`
    const named = `(SELECT s.*, 'rg-' || coalesce(s.team, 'shared') AS rg, 'vnet-' || coalesce(s.team, 'shared') || '-' || s.g AS name FROM seed s) s`
    await phase(
      'virtual_network',
      `INSERT INTO virtual_network (id, managed_tenant_id, subscription_id, resource_group, name, resource_id, location, state, team, ticket, requester_oid, network_group_ids, created_at, updated_at)
       SELECT vnet_id, managed_tenant_id, subscription_id, rg, name, ${resourceId}, 'westeurope',
              (CASE state WHEN 'requested' THEN 'deploying' ELSE state END)::virtual_network_state,
              team, ticket, requester_oid, '{}', created_at, coalesce(released_at, releasing_at, allocated_at, created_at)
         FROM ${named} ORDER BY g`,
    )
    await phase(
      'operation',
      `INSERT INTO operation (id, kind, state, virtual_network_id, requester_oid, request_hash, request, attempts, created_at, started_at, finished_at, updated_at)
       SELECT op_id, 'deploy',
              (CASE state WHEN 'failed' THEN 'failed' WHEN 'requested' THEN 'queued' WHEN 'deploying' THEN 'running' ELSE 'succeeded' END)::operation_state,
              vnet_id, requester_oid, md5(id::text), jsonb_build_object('team', team, 'prefixLength', CASE WHEN prefix IS NULL THEN NULL ELSE masklen(prefix) END),
              1, created_at, created_at, CASE WHEN state IN ('requested', 'deploying') THEN NULL ELSE coalesce(allocated_at, created_at) END,
              coalesce(allocated_at, created_at)
         FROM seed ORDER BY g`,
    )
    await phase(
      'allocation',
      `INSERT INTO allocation (id, operation_id, virtual_network_id, managed_tenant_id, subscription_id, resource_group, vnet_name, vnet_resource_id, pool_id, requested_size, state, team, requester_oid, ticket, created_at, allocated_at, released_at, updated_at)
       SELECT id, op_id, vnet_id, managed_tenant_id, subscription_id, rg, name, ${resourceId}, pool_id, requested_size,
              state::allocation_state, team, requester_oid, ticket, created_at, allocated_at, released_at,
              coalesce(released_at, releasing_at, allocated_at, created_at)
         FROM ${named} ORDER BY g`,
    )
    const prefixes = await phase(
      'allocation_prefix',
      'INSERT INTO allocation_prefix (allocation_id, prefix) SELECT id, prefix FROM seed WHERE prefix IS NOT NULL ORDER BY g',
    )
    const events = await phase(
      'allocation_event',
      `INSERT INTO allocation_event (allocation_id, operation_id, type, actor, prefixes, at)
       SELECT s.id, s.op_id, e.type::allocation_event_type, s.requester_oid,
              CASE WHEN e.held AND s.prefix IS NOT NULL THEN ARRAY[s.prefix] ELSE '{}'::inet[] END, e.at
         FROM seed s CROSS JOIN LATERAL (VALUES
                (1, 'requested', s.created_at, false, true),
                (2, 'deploying', s.created_at + interval '0.2 seconds', false, s.state <> 'requested'),
                (3, 'allocated', s.allocated_at, true, s.allocated_at IS NOT NULL),
                (4, 'failed', s.created_at + interval '45 seconds', false, s.state = 'failed'),
                (5, 'releasing', greatest(s.allocated_at, s.releasing_at - interval '30 seconds'), true, s.releasing_at IS NOT NULL),
                (6, 'released', s.released_at, true, s.released_at IS NOT NULL)
              ) e(step, type, at, held, present)
        WHERE e.present
        ORDER BY s.g, e.step`,
    )
    await client.query('RESET session_replication_role')
    await client.query('DROP TABLE seed, seed_slot')
    await timed(`rebuild ${indexes.length} indexes`, () => rebuild(connectionString, indexes))
    if (options.analyze !== false) {
      await phase('vacuum analyze', `VACUUM (ANALYZE) ${TABLES.join(', ')}`)
    }
    return {
      allocations: n,
      prefixes: prefixes.rowCount ?? 0,
      events: events.rowCount ?? 0,
      slots: { v4, v6 },
      foreignKeysChecked,
      seconds: (performance.now() - started) / 1000,
      phases,
    }
  } finally {
    await client.end()
  }
}
