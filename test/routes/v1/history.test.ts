import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { scratchDatabase } from '../../helpers/database.ts'

// A hand-built ledger in a database of its own (only the demo registry besides), so that every
// filter can be checked for exactly the rows it must return: IPv6, nested prefixes, a prefix
// released and taken again, and time boundaries to the millisecond.

const POOL = (name: string) => `${DEMO_IDS.networkManagerId}/ipamPools/${name}`
const RETAIL = POOL('pool-retail')
const RETAIL_V6 = POOL('pool-retail-v6')
const LOGISTICS = POOL('pool-logistics')
const OTHER_OID = 'e0e0e0e0-0000-4000-8000-0000000000e0'

interface Fixture {
  key: string
  tenant: 'B' | 'C'
  pool: string
  team: string | null
  requester: 'caller' | 'other'
  state: 'requested' | 'active' | 'released' | 'failed'
  prefixes: string[]
  created: string
  allocated?: string
  released?: string
}

const FIXTURE: Fixture[] = [
  // 192.168.20.0/22 held by retail, released, then taken again by payments.
  {
    key: 'retail-old',
    tenant: 'B',
    pool: RETAIL,
    team: 'retail',
    requester: 'caller',
    state: 'released',
    prefixes: ['192.168.20.0/22'],
    created: '2025-03-01T00:00:00.000Z',
    allocated: '2025-03-01T00:05:00.000Z',
    released: '2025-06-01T00:00:00.000Z',
  },
  {
    key: 'payments-reuse',
    tenant: 'B',
    pool: RETAIL,
    team: 'payments',
    requester: 'other',
    state: 'active',
    prefixes: ['192.168.20.0/22'],
    created: '2025-06-01T00:00:00.000Z',
    allocated: '2025-06-01T00:00:00.001Z',
  },
  // Nested: a /26 inside 192.168.20.0/22's neighbourhood is a different prefix; this one lies inside 192.168.24.0/22.
  {
    key: 'retail-nested',
    tenant: 'B',
    pool: RETAIL,
    team: 'retail',
    requester: 'caller',
    state: 'active',
    prefixes: ['192.168.24.64/26'],
    created: '2025-07-01T00:00:00.000Z',
    allocated: '2025-07-01T00:01:00.000Z',
  },
  {
    key: 'retail-v6',
    tenant: 'B',
    pool: RETAIL_V6,
    team: 'retail',
    requester: 'caller',
    state: 'active',
    prefixes: ['fd42:0:0:1::/64'],
    created: '2025-08-01T00:00:00.000Z',
    allocated: '2025-08-01T00:00:30.000Z',
  },
  {
    key: 'retail-failed',
    tenant: 'B',
    pool: RETAIL,
    team: 'retail',
    requester: 'caller',
    state: 'failed',
    prefixes: [],
    created: '2025-09-01T00:00:00.000Z',
  },
  {
    key: 'logistics',
    tenant: 'C',
    pool: LOGISTICS,
    team: 'logistics',
    requester: 'caller',
    state: 'active',
    prefixes: ['192.168.30.0/23', 'fd42:0:0:30::/64'],
    created: '2025-10-01T00:00:00.000Z',
    allocated: '2025-10-01T00:02:00.000Z',
  },
  {
    key: 'pending',
    tenant: 'B',
    pool: RETAIL,
    team: null,
    requester: 'other',
    state: 'requested',
    prefixes: [],
    created: '2025-11-01T00:00:00.000Z',
  },
  // Held for exactly April 2025: [2025-04-01, 2025-05-01).
  {
    key: 'april',
    tenant: 'B',
    pool: RETAIL,
    team: 'retail',
    requester: 'other',
    state: 'released',
    prefixes: ['192.168.40.0/24'],
    created: '2025-03-31T23:59:59.999Z',
    allocated: '2025-04-01T00:00:00.000Z',
    released: '2025-05-01T00:00:00.000Z',
  },
]

interface AllocationBody {
  id: string
  state: string
  prefixes: string[]
  team: string | null
  createdAt: string
}

describe('allocation history: GET /v1/allocations, /v1/allocations/{id}, /v1/prefixes/{cidr}/history', () => {
  let broker: TestBroker
  let drop: () => Promise<void>
  let databaseUrl: string
  let callerOid: string
  const ids = new Map<string, string>()
  const vnets = new Map<string, string>()
  const keyOf = (id: string) => [...ids].find(([, value]) => value === id)?.[0] ?? `unknown ${id}`

  before(async () => {
    ;({ url: databaseUrl, drop } = await scratchDatabase())
    broker = await startTestBroker({ databaseUrl, workerConcurrency: 0 })
    const { token } = await broker.as('Requester')
    callerOid = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { oid: string }).oid
    await insertFixture(databaseUrl, FIXTURE, callerOid, ids, vnets)
  })
  after(async () => {
    await broker.close()
    await drop()
  })

  /** The fixture keys a Reader's query returns, in order. */
  const keys = async (query: string, role: 'Reader' | 'Requester' = 'Reader') => {
    const { request } = await broker.as(role)
    const response = await request.get(`/v1/allocations?${query}`)
    assert.equal(response.status, 200, JSON.stringify(response.body))
    return (response.body as { value: AllocationBody[] }).value.map((a) => keyOf(a.id))
  }

  const ALL_NEWEST_FIRST = [
    'pending',
    'logistics',
    'retail-failed',
    'retail-v6',
    'retail-nested',
    'payments-reuse',
    'april',
    'retail-old',
  ]

  it('lists everything newest first without filters', async () => {
    assert.deepEqual(await keys(''), ALL_NEWEST_FIRST)
  })

  it('each filter alone returns exactly its rows', async () => {
    const cases: [string, string[]][] = [
      [`tenantId=${DEMO_IDS.tenantC}`, ['logistics']],
      [`subscriptionId=${DEMO_IDS.subscriptionC}`, ['logistics']],
      [`poolId=${encodeURIComponent(RETAIL_V6)}`, ['retail-v6']],
      // ARM ids are case-insensitive; the registered spelling is found.
      [`poolId=${encodeURIComponent(RETAIL_V6.replace('ipamPools', 'IPAMPOOLS'))}`, ['retail-v6']],
      ['team=retail', ['retail-failed', 'retail-v6', 'retail-nested', 'april', 'retail-old']],
      [`requesterOid=${OTHER_OID}`, ['pending', 'payments-reuse', 'april']],
      ['state=released', ['april', 'retail-old']],
      ['state=requested', ['pending']],
      [`virtualNetworkId=${vnets.get('retail-v6')}`, ['retail-v6']],
      // Time ranges are [from, to).
      [
        'createdFrom=2025-06-01T00:00:00.000Z',
        ['pending', 'logistics', 'retail-failed', 'retail-v6', 'retail-nested', 'payments-reuse'],
      ],
      ['createdTo=2025-06-01T00:00:00.000Z', ['april', 'retail-old']],
      ['createdTo=2025-03-31T23:59:59.999Z', ['retail-old']],
      ['releasedFrom=2025-05-01T00:00:00.000Z', ['april', 'retail-old']],
      ['releasedFrom=2025-05-01T00:00:00.001Z', ['retail-old']],
      ['releasedTo=2025-05-01T00:00:00.001Z', ['april']],
      // Active at an instant: allocated by then and not yet released; the release instant itself is free.
      ['activeAt=2025-04-01T00:00:00.000Z', ['april', 'retail-old']],
      ['activeAt=2025-05-01T00:00:00.000Z', ['retail-old']],
      ['activeAt=2025-04-30T23:59:59.999Z', ['april', 'retail-old']],
      // Released at 00:00:00.000 and taken again at .001: for that millisecond nobody held it.
      ['activeAt=2025-06-01T00:00:00.000Z', []],
      ['activeAt=2025-05-31T23:59:59.999Z', ['retail-old']],
      ['activeAt=2025-06-01T00:00:00.001Z', ['payments-reuse']],
      ['activeAt=2026-01-01T00:00:00Z', ['logistics', 'retail-v6', 'retail-nested', 'payments-reuse']],
      // Who holds (or held) this address: both holders of the reused prefix.
      ['containsIp=192.168.21.7', ['payments-reuse', 'retail-old']],
      ['containsIp=192.168.24.100', ['retail-nested']],
      ['containsIp=192.168.24.1', []],
      ['containsIp=fd42:0:0:1::abcd', ['retail-v6']],
      ['containsIp=fd42::30:0:0:1', []],
      ['containsIp=fd42:0:0:30:ffff:ffff:ffff:ffff', ['logistics']],
      // Overlaps: containing, inside, equal.
      ['overlaps=192.168.0.0/16', ['logistics', 'retail-nested', 'payments-reuse', 'april', 'retail-old']],
      ['overlaps=192.168.24.0/22', ['retail-nested']],
      ['overlaps=192.168.24.64/28', ['retail-nested']],
      ['overlaps=192.168.20.0/22', ['payments-reuse', 'retail-old']],
      ['overlaps=fd42::/48', ['logistics', 'retail-v6']],
      ['overlaps=10.0.0.0/8', []],
    ]
    for (const [query, expected] of cases) {
      assert.deepEqual(await keys(query), expected, query)
    }
  })

  it('filters combine', async () => {
    const cases: [string, string[]][] = [
      ['team=retail&state=active', ['retail-v6', 'retail-nested']],
      ['team=retail&createdFrom=2025-04-01T00:00:00Z&createdTo=2025-09-01T00:00:00Z', ['retail-v6', 'retail-nested']],
      ['containsIp=192.168.21.7&activeAt=2025-03-15T00:00:00Z', ['retail-old']],
      ['containsIp=192.168.21.7&activeAt=2025-07-01T00:00:00Z', ['payments-reuse']],
      [`overlaps=fd42::/48&tenantId=${DEMO_IDS.tenantB}`, ['retail-v6']],
      [`team=retail&requesterOid=${OTHER_OID}&state=released`, ['april']],
      [`poolId=${encodeURIComponent(RETAIL)}&activeAt=2025-04-15T00:00:00Z`, ['april', 'retail-old']],
      [`subscriptionId=${DEMO_IDS.subscriptionB}&team=logistics`, []],
    ]
    for (const [query, expected] of cases) {
      assert.deepEqual(await keys(query), expected, query)
    }
  })

  it('sorts by created, allocated or released time, empty times as the far future', async () => {
    assert.deepEqual(await keys('sort=createdAt'), [...ALL_NEWEST_FIRST].reverse())
    assert.deepEqual(await keys('sort=releasedAt'), [
      'april',
      'retail-old',
      // Not released: by id, after every released one.
      ...ALL_NEWEST_FIRST.filter((k) => !['april', 'retail-old'].includes(k)).sort((a, b) =>
        ids.get(a)!.localeCompare(ids.get(b)!),
      ),
    ])
    const allocatedDescending = await keys('sort=-allocatedAt')
    assert.deepEqual(allocatedDescending.slice(0, 2).sort(), ['pending', 'retail-failed'])
    assert.deepEqual(allocatedDescending.slice(2), [
      'logistics',
      'retail-v6',
      'retail-nested',
      'payments-reuse',
      'april',
      'retail-old',
    ])
  })

  it('pages with a cursor through every sort, each row once, in order', async () => {
    const { request } = await broker.as('Reader')
    for (const sort of ['-createdAt', 'createdAt', 'allocatedAt', '-allocatedAt', 'releasedAt', '-releasedAt']) {
      const whole = await keys(`sort=${sort}`)
      const walked: string[] = []
      let link: string | null = `/v1/allocations?sort=${sort}&limit=3`
      while (link) {
        const response = await request.get(link)
        assert.equal(response.status, 200, JSON.stringify(response.body))
        const body = response.body as { value: AllocationBody[]; nextLink: string | null }
        assert.ok(body.value.length <= 3)
        walked.push(...body.value.map((a) => keyOf(a.id)))
        link = body.nextLink
      }
      assert.deepEqual(walked, whole, sort)
    }
  })

  it('Requesters see their own allocations only', async () => {
    assert.deepEqual(await keys('', 'Requester'), [
      'logistics',
      'retail-failed',
      'retail-v6',
      'retail-nested',
      'retail-old',
    ])
    const { request } = await broker.as('Requester')
    const foreign = await request.get(`/v1/allocations/${ids.get('payments-reuse')}`)
    assert.equal(foreign.status, 404)
    const history = await request.get('/v1/prefixes/192.168.20.0%2F22/history')
    assert.deepEqual(
      (history.body as { value: { allocation: AllocationBody }[] }).value.map((h) => keyOf(h.allocation.id)),
      ['retail-old'],
    )
  })

  it('GET /v1/allocations/{id} returns the allocation with its event timeline', async () => {
    const { request } = await broker.as('Reader')
    const response = await request.get(`/v1/allocations/${ids.get('retail-old')}`)
    assert.equal(response.status, 200, JSON.stringify(response.body))
    const body = response.body as AllocationBody & {
      releasedAt: string
      events: { type: string; at: string; prefixes: string[]; actor: string }[]
    }
    assert.equal(body.state, 'released')
    assert.deepEqual(body.prefixes, ['192.168.20.0/22'])
    assert.equal(body.releasedAt, '2025-06-01T00:00:00.000Z')
    assert.deepEqual(
      body.events.map((e) => [e.type, e.at, e.prefixes]),
      [
        ['requested', '2025-03-01T00:00:00.000Z', []],
        ['deploying', '2025-03-01T00:00:00.000Z', []],
        ['allocated', '2025-03-01T00:05:00.000Z', ['192.168.20.0/22']],
        ['releasing', '2025-06-01T00:00:00.000Z', ['192.168.20.0/22']],
        ['released', '2025-06-01T00:00:00.000Z', ['192.168.20.0/22']],
      ],
    )
    assert.equal((await request.get(`/v1/allocations/${randomUUID()}`)).status, 404)
  })

  it('prefix history lists every holder of an overlapping prefix over time', async () => {
    const { request } = await broker.as('Reader')
    const response = await request.get('/v1/prefixes/192.168.16.0%2F21/history')
    assert.equal(response.status, 200, JSON.stringify(response.body))
    const body = response.body as {
      prefix: string
      truncated: boolean
      value: {
        prefix: string
        relation: string
        heldFrom: string
        heldUntil: string | null
        allocation: AllocationBody
      }[]
    }
    assert.equal(body.prefix, '192.168.16.0/21')
    assert.deepEqual(
      body.value.map((h) => [keyOf(h.allocation.id), h.prefix, h.relation, h.heldFrom, h.heldUntil]),
      [
        ['retail-old', '192.168.20.0/22', 'within', '2025-03-01T00:05:00.000Z', '2025-06-01T00:00:00.000Z'],
        ['payments-reuse', '192.168.20.0/22', 'within', '2025-06-01T00:00:00.001Z', null],
      ],
    )
    // The same asked with the slash as a path separator, and about a /26 inside the /22: contains.
    const inside = await request.get('/v1/prefixes/192.168.20.64/26/history')
    assert.deepEqual(
      (inside.body as typeof body).value.map((h) => [keyOf(h.allocation.id), h.relation]),
      [
        ['retail-old', 'contains'],
        ['payments-reuse', 'contains'],
      ],
    )
    const equal = await request.get(`/v1/prefixes/${encodeURIComponent('fd42:0:0:1::/64')}/history`)
    assert.deepEqual(
      (equal.body as typeof body).value.map((h) => [keyOf(h.allocation.id), h.relation]),
      [['retail-v6', 'equal']],
    )
    const limited = await request.get('/v1/prefixes/192.168.0.0%2F16/history?limit=2')
    assert.equal((limited.body as typeof body).value.length, 2)
    assert.equal((limited.body as typeof body).truncated, true)
  })

  it('refuses bad addresses, prefixes, times and cursors with problem details, before any query', async () => {
    const { request } = await broker.as('Reader')
    const bad: [string, string][] = [
      ['/v1/allocations?containsIp=10.1.2', 'invalid-ip-address'],
      ['/v1/allocations?containsIp=fe80::1%25eth0', 'invalid-ip-address'],
      ['/v1/allocations?containsIp=0x0a.1.2.3', 'invalid-ip-address'],
      ['/v1/allocations?overlaps=10.1.2.0/33', 'invalid-cidr'],
      ['/v1/allocations?overlaps=10.1.2.3/24', 'invalid-cidr'],
      ['/v1/allocations?overlaps=10.1.2.0', 'invalid-cidr'],
      ['/v1/allocations?cursor=bm90LWEtY3Vyc29y', 'invalid-cursor'],
      ['/v1/prefixes/10.1.2.3%2F8/history', 'invalid-cidr'],
      ['/v1/prefixes/hello/history', 'invalid-cidr'],
    ]
    for (const [url, code] of bad) {
      const response = await request.get(url)
      assert.equal(response.status, 400, url)
      assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8', url)
      assert.equal((response.body as { code: string }).code, code, `${url}: ${JSON.stringify(response.body)}`)
    }
    assert.equal((await request.get('/v1/allocations?activeAt=yesterday')).status, 400)
    assert.equal((await request.get('/v1/allocations?sort=prefix')).status, 400)
    // A cursor of another sort is refused, not misread.
    const page = await request.get('/v1/allocations?limit=1&sort=createdAt')
    const cursor = new URL((page.body as { nextLink: string }).nextLink, 'http://x').searchParams.get('cursor')!
    const mismatch = await request.get(`/v1/allocations?sort=-createdAt&cursor=${cursor}`)
    assert.equal((mismatch.body as { code: string }).code, 'invalid-cursor')
    const unacceptable = await request.get('/v1/allocations').set('accept', 'image/png')
    assert.equal(unacceptable.status, 406)
    // What curl and browsers send: */* is JSON; a media range and q-values are weighed.
    for (const [accept, type] of [
      ['*/*', 'application/json'],
      ['application/json, text/plain, */*', 'application/json'],
      ['text/*', 'text/csv'],
      ['text/csv;q=0.5, application/x-ndjson', 'application/x-ndjson'],
    ]) {
      const response = await request.get('/v1/allocations?limit=1').set('accept', accept!).buffer(true)
      assert.equal(response.status, 200, accept)
      assert.match(response.headers['content-type'] as string, new RegExp(`^${type!}`), accept)
    }
  })

  it('exports CSV and NDJSON with the same rows as the pages', async () => {
    const { request } = await broker.as('Reader')
    const csv = await request.get('/v1/allocations?team=retail').set('accept', 'text/csv').buffer(true)
    assert.equal(csv.status, 200)
    assert.match(csv.headers['content-type'] as string, /^text\/csv/)
    assert.match(csv.headers['content-disposition'] as string, /attachment; filename="allocations-.*\.csv"/)
    const lines = csv.text.trimEnd().split('\n')
    const header = lines[0]!.split(',')
    assert.deepEqual(header.slice(0, 3), ['id', 'state', 'tenantId'])
    const idColumn = header.indexOf('id')
    assert.deepEqual(
      lines.slice(1).map((line) => keyOf(line.split(',')[idColumn]!)),
      ['retail-failed', 'retail-v6', 'retail-nested', 'april', 'retail-old'],
    )
    const ndjson = await request
      .get('/v1/allocations?overlaps=fd42::/48&sort=createdAt')
      .set('accept', 'application/x-ndjson')
      .buffer(true)
      .parse((res, done) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        res.on('end', () => done(null, text))
      })
    assert.equal(ndjson.status, 200)
    const rows = (ndjson.body as string)
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as AllocationBody)
    const page = await request.get('/v1/allocations?overlaps=fd42::/48&sort=createdAt')
    assert.deepEqual(rows, (page.body as { value: AllocationBody[] }).value)
  })

  it('walking all pages while allocations are inserted returns each old row once', async () => {
    const { request } = await broker.as('Reader')
    const seen: string[] = []
    let link: string | null = '/v1/allocations?limit=2'
    let inserted = 0
    while (link) {
      const response = await request.get(link)
      const body = response.body as { value: AllocationBody[]; nextLink: string | null }
      seen.push(...body.value.map((a) => a.id))
      // New allocations arrive between every two pages (newest first: they sort before the cursor).
      const extra = new Map<string, string>()
      await insertFixture(
        databaseUrl,
        [
          {
            ...FIXTURE[0]!,
            key: `new-${inserted}`,
            created: new Date().toISOString(),
            state: 'requested',
            prefixes: [],
          },
        ],
        callerOid,
        extra,
      )
      inserted++
      link = body.nextLink
    }
    const old = seen.filter((id) => [...ids.values()].includes(id))
    assert.equal(old.length, FIXTURE.length)
    assert.equal(new Set(seen).size, seen.length, 'no row twice')
    assert.deepEqual(old.map(keyOf), ALL_NEWEST_FIRST)
  })
})

/** Inserts allocations as the broker would have written them: VNet, operation, allocation, prefixes, ledger. */
async function insertFixture(
  url: string,
  rows: Fixture[],
  callerOid: string,
  ids: Map<string, string>,
  vnets = new Map<string, string>(),
) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const tenants = new Map(
      (await client.query<{ id: string; tenant_id: string }>('SELECT id, tenant_id FROM managed_tenant')).rows.map(
        (r) => [r.tenant_id, r.id],
      ),
    )
    for (const row of rows) {
      const tenant = tenants.get(row.tenant === 'B' ? DEMO_IDS.tenantB : DEMO_IDS.tenantC)!
      const subscription = row.tenant === 'B' ? DEMO_IDS.subscriptionB : DEMO_IDS.subscriptionC
      const requester = row.requester === 'caller' ? callerOid : OTHER_OID
      const name = `vnet-${row.key}`
      const resourceId = `/subscriptions/${subscription}/resourceGroups/rg-history/providers/Microsoft.Network/virtualNetworks/${name}`
      const vnet = randomUUID()
      const operation = randomUUID()
      const allocation = randomUUID()
      const vnetState = { requested: 'deploying', active: 'active', released: 'released', failed: 'failed' }[row.state]
      await client.query(
        `INSERT INTO virtual_network (id, managed_tenant_id, subscription_id, resource_group, name, resource_id, state, team, requester_oid, network_group_ids, created_at, updated_at)
         VALUES ($1, $2, $3, 'rg-history', $4, $5, $6, $7, $8, '{}', $9, $9)`,
        [vnet, tenant, subscription, name, resourceId, vnetState, row.team, requester, row.created],
      )
      await client.query(
        `INSERT INTO operation (id, kind, state, virtual_network_id, requester_oid, request_hash, request, created_at, updated_at)
         VALUES ($1, 'deploy', $2, $3, $4, 'fixture', '{}', $5, $5)`,
        [operation, row.state === 'failed' ? 'failed' : 'succeeded', vnet, requester, row.created],
      )
      await client.query(
        `INSERT INTO allocation (id, operation_id, virtual_network_id, managed_tenant_id, subscription_id, resource_group, vnet_name, vnet_resource_id, pool_id, requested_size, state, team, requester_oid, created_at, allocated_at, released_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'rg-history', $6, $7, $8, 256, $9, $10, $11, $12, $13, $14, $12)`,
        [
          allocation,
          operation,
          vnet,
          tenant,
          subscription,
          name,
          resourceId,
          row.pool,
          row.state,
          row.team,
          requester,
          row.created,
          row.allocated ?? null,
          row.released ?? null,
        ],
      )
      for (const prefix of row.prefixes) {
        await client.query('INSERT INTO allocation_prefix (allocation_id, prefix) VALUES ($1, $2)', [
          allocation,
          prefix,
        ])
      }
      const events: [string, string, string[]][] = [
        ['requested', row.created, []],
        ['deploying', row.created, []],
      ]
      if (row.allocated) events.push(['allocated', row.allocated, row.prefixes])
      if (row.state === 'failed') events.push(['failed', row.created, []])
      if (row.released) events.push(['releasing', row.released, row.prefixes], ['released', row.released, row.prefixes])
      for (const [type, at, prefixes] of events) {
        await client.query(
          'INSERT INTO allocation_event (allocation_id, operation_id, type, actor, prefixes, at) VALUES ($1, $2, $3, $4, $5::inet[], $6)',
          [allocation, operation, type, requester, prefixes, at],
        )
      }
      ids.set(row.key, allocation)
      vnets.set(row.key, vnet)
    }
  } finally {
    await client.end()
  }
}
