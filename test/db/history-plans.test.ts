import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { seedHistory } from '../../bench/history-seed.ts'
import type { Prisma } from '../../src/db/generated/client.ts'
import {
  type AllocationFilter,
  type AllocationSort,
  historyWhere,
  pageQueries,
  prefixHistoryQuery,
} from '../../src/services/history.ts'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { scratchDatabase } from '../helpers/database.ts'

// The history queries must be index scans, not table scans: on a ledger of years a sequential scan
// is the difference between a millisecond and a second. The exact SQL the API runs (the service's
// builders) is EXPLAINed on a seeded ledger large enough for the planner to prefer indexes.

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Index Name'?: string
  'Index Cond'?: string
  Plans?: PlanNode[]
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)]
}

describe('history queries use their indexes (EXPLAIN)', () => {
  let broker: TestBroker
  let drop: () => Promise<void>
  let client: pg.Client
  let sample: { team: string; subscription: string; requester: string; pool: string; prefix: string; created: Date }

  before(async () => {
    const scratch = await scratchDatabase()
    drop = scratch.drop
    // The broker registers the demo tenants the seed refers to.
    broker = await startTestBroker({ databaseUrl: scratch.url, workerConcurrency: 0 })
    await seedHistory(scratch.url, { allocations: 40_000 })
    client = new pg.Client({ connectionString: scratch.url })
    await client.connect()
    const { rows } = await client.query<{
      team: string
      subscription: string
      requester: string
      pool: string
      prefix: string
      created: Date
    }>(`SELECT a.team, a.subscription_id::text AS subscription, a.requester_oid AS requester, a.pool_id AS pool,
               p.prefix::cidr::text AS prefix, a.created_at AS created
          FROM allocation a JOIN allocation_prefix p ON p.allocation_id = a.id
         WHERE a.team IS NOT NULL AND family(p.prefix) = 4 ORDER BY a.created_at LIMIT 1 OFFSET 5000`)
    sample = rows[0]!
  })
  after(async () => {
    await client?.end()
    await broker?.close()
    await drop?.()
  })

  const plan = async (query: Prisma.Sql) => {
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (FORMAT JSON) ${query.text}`,
      query.values,
    )
    return nodes(rows[0]!['QUERY PLAN'][0].Plan)
  }

  const assertUses = async (name: string, query: Prisma.Sql, index: string, alternative?: string) => {
    const all = await plan(query)
    const scans = all.map(
      (n) =>
        `${n['Node Type']}${n['Index Name'] ? ` using ${n['Index Name']}` : ''}${n['Relation Name'] ? ` on ${n['Relation Name']}` : ''}`,
    )
    assert.ok(
      all.some(
        (n) =>
          n['Index Name'] === index ||
          // The alternative counts only as a range scan (an Index Cond on created_at), not a walk from one end.
          (alternative && n['Index Name'] === alternative && /created_at/.test(n['Index Cond'] ?? '')),
      ),
      `${name}: expected ${index}; plan: ${scans.join(' / ')}`,
    )
    const seq = all.filter(
      (n) =>
        n['Node Type'] === 'Seq Scan' &&
        ['allocation', 'allocation_prefix', 'allocation_event'].includes(n['Relation Name'] ?? ''),
    )
    assert.deepEqual(seq, [], `${name}: sequential scan in ${scans.join(' / ')}`)
  }

  const page = (filter: AllocationFilter, sort: AllocationSort = '-createdAt') =>
    pageQueries(historyWhere({}, filter), sort, undefined)[0]!(101)

  it('the default page walks the created_at index', async () => {
    await assertUses('newest first', page({}), 'allocation_created_at_id_idx')
    await assertUses('oldest first', page({}, 'createdAt'), 'allocation_created_at_id_idx')
  })

  it('team + time window, subscription, requester and pool pages use their (column, created_at) indexes', async () => {
    const from = new Date(sample.created.getTime() - 30 * 86_400_000).toISOString()
    const to = new Date(sample.created.getTime() + 30 * 86_400_000).toISOString()
    await assertUses(
      'team + window',
      page({ team: sample.team, createdFrom: from, createdTo: to }),
      'allocation_team_created_at_idx',
    )
    await assertUses(
      'subscription + window',
      page({ subscriptionId: sample.subscription, createdFrom: from, createdTo: to }),
      'allocation_subscription_id_created_at_idx',
    )
    await assertUses('requester', page({ requesterOid: sample.requester }), 'allocation_requester_oid_created_at_idx')
    await assertUses(
      'pool + window',
      page({ poolId: sample.pool, createdFrom: from, createdTo: to }),
      'allocation_pool_id_created_at_idx',
    )
  })

  it('contains-IP and overlaps use the GiST index on prefixes', async () => {
    // The sample is an IPv4 prefix of /24 or longer: its network address + 1 lies inside it.
    const octets = sample.prefix.split('/')[0]!.split('.').map(Number)
    const address = [...octets.slice(0, 3), octets[3]! + 1].join('.')
    await assertUses('containsIp', page({ containsIp: address }), 'allocation_prefix_prefix_idx')
    await assertUses('overlaps', page({ overlaps: sample.prefix }), 'allocation_prefix_prefix_idx')
    await assertUses('overlaps IPv6', page({ overlaps: 'fd42:0:0:1::/64' }), 'allocation_prefix_prefix_idx')
  })

  it('active-at-T uses the GiST index on the holding period, or created_at from T down', async () => {
    // Early in the ledger few allocations were held, so the range index is the cheap way in.
    const early = new Date(sample.created.getTime() - 300 * 86_400_000).toISOString()
    // Or, with the created_at <= T bound, created_at backwards from T: both read about a page of rows.
    await assertUses(
      'activeAt',
      page({ activeAt: early }),
      'allocation_held_during_idx',
      'allocation_created_at_id_idx',
    )
  })

  it('sorting by release time walks the released_at index (the unreleased, by id, the primary key)', async () => {
    const where = historyWhere({}, {})
    // Going up: released first (keyed), then the unreleased; going down, the other way round.
    const [upKeyed, upEmpty] = pageQueries(where, 'releasedAt', undefined)
    const [downEmpty, downKeyed] = pageQueries(where, '-releasedAt', undefined)
    await assertUses('releasedAt', upKeyed!(101), 'allocation_released_at_id_idx')
    await assertUses('-releasedAt', downKeyed!(101), 'allocation_released_at_id_idx')
    await assertUses('releasedAt, unreleased', upEmpty!(101), 'allocation_pkey')
    await assertUses('-releasedAt, unreleased', downEmpty!(101), 'allocation_pkey')
  })

  it('prefix history uses the GiST index on prefixes', async () => {
    await assertUses(
      'prefix history',
      prefixHistoryQuery(historyWhere({}, {}), sample.prefix, 1001),
      'allocation_prefix_prefix_idx',
    )
  })
})
