import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import supertest from 'supertest'
import { DEMO_IDS } from '../../emulator/demo-broker.ts'
import { OPENAPI_FILE } from '../../scripts/openapi.ts'
import { BrokerMetrics } from '../../src/metrics/broker-metrics.ts'
import { buildTestApp } from '../helpers/app.ts'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { credential } from '../helpers/emulator.ts'

const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`
const RG_B = 'rg-retail-network'
const TENANT_A_OWNER = 'f4f4f4f4-0000-4000-8000-0000000000f4'
const IPAM_POOL_USER = '7b3e853f-ad5d-4fb5-a7b8-56a3581c7037'
const AUTHORIZATION_API = 'api-version=2022-04-01'
const ARM_SCOPE = 'https://management.azure.com/.default'

type Labels = Record<string, string>
interface Sample {
  name: string
  labels: Labels
  value: number
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parse(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(match, `not a sample line: ${line}`)
    const labels: Labels = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}

class Scrape {
  readonly text: string
  readonly samples: Sample[]

  constructor(text: string) {
    this.text = text
    this.samples = parse(text)
  }

  /** The value of the sample with exactly these labels; 0 when there is none (a counter not yet incremented). */
  value(name: string, labels: Labels = {}): number {
    const wanted = Object.entries(labels)
    const found = this.samples.filter(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).length === wanted.length &&
        wanted.every(([key, value]) => s.labels[key] === value),
    )
    assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`)
    return found[0]?.value ?? 0
  }

  /** The sum over every sample of `name` whose labels include these. */
  sum(name: string, labels: Labels = {}): number {
    return this.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value))
      .reduce((total, s) => total + s.value, 0)
  }
}

async function scrape(server: TestBroker['app']['server']): Promise<Scrape> {
  const response = await supertest(server).get('/metrics')
  assert.equal(response.status, 200, response.text)
  return new Scrape(response.text)
}

interface OperationBody {
  id: string
  state: string
  error: { code: string; status: number | null } | null
}

describe('GET /metrics on the whole broker', () => {
  let broker: TestBroker

  before(async () => {
    broker = await startTestBroker()
  })
  after(async () => broker.close())

  const deployRequest = (name: string) => ({
    subscriptionId: DEMO_IDS.subscriptionB,
    resourceGroup: RG_B,
    name,
    location: 'westeurope',
    ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
    subnets: [{ name: 'app', numberOfIpAddresses: '64' }],
    team: 'metrics',
    ticket: 'CHG-MET',
  })

  it('needs no token, speaks the Prometheus text format, and is not in the OpenAPI document', async () => {
    const response = await supertest(broker.app.server).get('/metrics')
    assert.equal(response.status, 200, response.text)
    assert.match(response.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/)
    assert.match(response.text, /^# HELP ipam_broker_http_requests_total /m)
    assert.match(response.text, /^# TYPE ipam_broker_http_request_duration_seconds histogram$/m)
    assert.match(response.text, /^# TYPE ipam_broker_operation_duration_seconds histogram$/m)
    // Node's default metrics, in this app's registry and under its prefix.
    assert.match(response.text, /^ipam_broker_process_cpu_user_seconds_total \d/m)
    assert.match(response.text, /^ipam_broker_nodejs_eventloop_lag_seconds \d/m)

    const committed = JSON.parse(await readFile(OPENAPI_FILE, 'utf8')) as { paths: Record<string, unknown> }
    assert.ok(Object.keys(committed.paths).length > 0)
    assert.equal(committed.paths['/metrics'], undefined)
    assert.equal((broker.app.swagger() as { paths: Record<string, unknown> }).paths['/metrics'], undefined)

    // Scrapes are not traffic: after two of them, no series names the /metrics route.
    const again = await scrape(broker.app.server)
    assert.equal(again.sum('ipam_broker_http_requests_total', { route: '/metrics' }), 0)
    assert.ok(!again.text.includes('route="/metrics"'))
  })

  it('counts a deployment: requests by route, the operation, tokens, Key Vault reads, ARM calls and pool addresses', async () => {
    const { emulator } = broker.azure
    const before = await scrape(broker.app.server)
    const name = 'vnet-metrics-1'
    // One 503 on the PUT, retried by the SDK: an ARM error by the code in its body.
    emulator.faults.add({
      match: { service: 'arm', method: 'PUT', pathPattern: `/virtualNetworks/${name}$` },
      action: { kind: 'status', status: 503 },
      remaining: 1,
    })

    const anonymous = supertest(broker.app.server)
    assert.equal((await anonymous.get('/v1/no-such-route/8c4a3e1e-0000-4000-8000-000000000001')).status, 404)
    assert.equal((await anonymous.get('/v1/operations/8c4a3e1e-0000-4000-8000-000000000002')).status, 401)

    const { request } = await broker.as('Requester')
    const submitted = await request.post('/v1/vnets').send(deployRequest(name))
    assert.equal(submitted.status, 202, submitted.text)
    const { id } = submitted.body as OperationBody
    const done = await request.get(`/v1/operations/${id}?wait=30`)
    assert.equal(done.status, 200, done.text)
    assert.equal((done.body as OperationBody).state, 'succeeded', done.text)
    assert.deepEqual(emulator.faults.list(), [], 'the injected fault was met')

    const after = await scrape(broker.app.server)
    const delta = (metric: string, labels: Labels = {}) => after.value(metric, labels) - before.value(metric, labels)

    // HTTP: by route template, never by raw path.
    const deployRoute = { method: 'POST', route: '/v1/vnets', status_code: '202' }
    assert.equal(delta('ipam_broker_http_requests_total', deployRoute), 1)
    assert.equal(delta('ipam_broker_http_request_duration_seconds_count', deployRoute), 1)
    assert.equal(delta('ipam_broker_http_request_duration_seconds_bucket', { ...deployRoute, le: '+Inf' }), 1)
    assert.equal(after.value('ipam_broker_http_request_duration_seconds_bucket', { ...deployRoute, le: '60' }), 1)
    assert.ok(after.value('ipam_broker_http_request_duration_seconds_sum', deployRoute) > 0)
    assert.equal(delta('ipam_broker_http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' }), 1)
    assert.equal(
      delta('ipam_broker_http_requests_total', { method: 'GET', route: '/v1/operations/:id', status_code: '401' }),
      1,
    )
    assert.equal(
      delta('ipam_broker_http_requests_total', { method: 'GET', route: '/v1/operations/:id', status_code: '200' }),
      1,
    )
    assert.ok(!after.text.includes('8c4a3e1e-0000'), 'no raw path in a label')
    assert.ok(!after.text.includes('no-such-route'), 'no raw path in a label')

    // The operation.
    const succeeded = { kind: 'deploy', outcome: 'succeeded' }
    assert.equal(after.value('ipam_broker_operations_total', succeeded), 1)
    assert.equal(after.value('ipam_broker_operations_total', { kind: 'deploy', outcome: 'failed' }), 0)
    assert.equal(after.value('ipam_broker_operation_duration_seconds_count', succeeded), 1)
    assert.equal(after.value('ipam_broker_operation_duration_seconds_bucket', { ...succeeded, le: '1800' }), 1)
    assert.ok(after.value('ipam_broker_operation_duration_seconds_sum', succeeded) > 0)

    // Entra and Key Vault: exactly what reached the emulator (the deployer app, in tenants B and A).
    const { tokenRequests, secretReads } = emulator.state.counters
    for (const tenantId of [DEMO_IDS.tenantA, DEMO_IDS.tenantB]) {
      const issued = after.value('ipam_broker_token_requests_total', { tenant_id: tenantId, outcome: 'issued' })
      assert.ok(issued > 0, `tokens in ${tenantId}`)
      assert.equal(issued, tokenRequests.get(`${tenantId}/${DEMO_IDS.deployerAppId}`), `tokens in ${tenantId}`)
    }
    assert.equal(after.sum('ipam_broker_token_requests_total', { outcome: 'refused' }), 0)
    assert.equal(after.sum('ipam_broker_token_requests_total', { outcome: 'error' }), 0)
    const reads = [...secretReads.values()].reduce((sum, n) => sum + n, 0)
    assert.equal(reads, 1, 'the secret was read once and then served from the cache')
    assert.equal(after.value('ipam_broker_keyvault_reads_total', { outcome: 'succeeded' }), reads)
    assert.equal(after.value('ipam_broker_keyvault_reads_total', { outcome: 'failed' }), 0)

    // ARM: every response the emulator logged for the broker, by method and status, and the 503 by its code.
    const logged = new Map<string, number>()
    for (const entry of emulator.requestLog.entries.filter((e) => e.service === 'arm')) {
      const key = `${entry.method} ${entry.status}`
      logged.set(key, (logged.get(key) ?? 0) + 1)
    }
    const counted = new Map(
      after.samples
        .filter((s) => s.name === 'ipam_broker_arm_requests_total')
        .map((s) => [`${s.labels['method']} ${s.labels['status_code']}`, s.value]),
    )
    assert.deepEqual(counted, logged)
    assert.equal(delta('ipam_broker_arm_requests_total', { method: 'PUT', status_code: '503' }), 1)
    assert.equal(delta('ipam_broker_arm_requests_total', { method: 'PUT', status_code: '201' }), 1)
    assert.equal(delta('ipam_broker_arm_errors_total', { code: 'ServiceUnavailable' }), 1)
    assert.equal(after.sum('ipam_broker_arm_errors_total'), 1, after.text)

    // The ledger holds the VNet's 256 addresses in the pool (other test files may hold some too).
    assert.equal(delta('ipam_broker_pool_allocated_addresses', { pool_id: POOL_RETAIL }), 256)
  })

  it('counts a long-running operation that ends Failed by the code in its status', async () => {
    const name = 'vnet-metrics-lro-failed'
    broker.azure.emulator.faults.add({
      match: { service: 'arm', method: 'PUT', pathPattern: `/virtualNetworks/${name}$` },
      action: { kind: 'lro-fail', code: 'QuotaExceeded', message: 'The subscription quota is reached.' },
      remaining: 1,
    })
    const before = await scrape(broker.app.server)
    const { request } = await broker.as('Requester')
    const response = await request.post('/v1/vnets?wait=30').send({
      ...deployRequest(name),
      ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '16' }],
      subnets: [],
    })
    assert.equal(response.status, 200, response.text)
    const operation = response.body as OperationBody
    assert.equal(operation.state, 'failed', response.text)
    assert.equal(operation.error?.code, 'QuotaExceeded')

    const after = await scrape(broker.app.server)
    const delta = (metric: string, labels: Labels = {}) => after.value(metric, labels) - before.value(metric, labels)
    assert.equal(delta('ipam_broker_arm_errors_total', { code: 'QuotaExceeded' }), 1)
    assert.equal(after.sum('ipam_broker_arm_errors_total') - before.sum('ipam_broker_arm_errors_total'), 1)
    assert.equal(delta('ipam_broker_operations_total', { kind: 'deploy', outcome: 'failed' }), 1)
  })

  it('counts an ARM refusal by its code, and the failed operation', async () => {
    // Tenant A's network admin removes the deployer's IPAM Pool User role on pool-retail.
    const armAsOwner = async (path: string, method = 'GET') => {
      const { token } = await credential(broker.azure.emulator, DEMO_IDS.tenantA, TENANT_A_OWNER).getToken(ARM_SCOPE)
      const response = await fetch(`${broker.azure.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}` },
      })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    const deployer = broker.azure.emulator.state.servicePrincipal(DEMO_IDS.deployerAppId, DEMO_IDS.tenantA)!.objectId
    const listed = await armAsOwner(
      `${POOL_RETAIL}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${deployer}'&${AUTHORIZATION_API}`,
    )
    const assignment = (listed.body['value'] as { id: string; properties: { roleDefinitionId: string } }[]).find((a) =>
      a.properties.roleDefinitionId.endsWith(`/${IPAM_POOL_USER}`),
    )
    assert.ok(assignment, JSON.stringify(listed.body))
    assert.equal((await armAsOwner(`${assignment.id}?${AUTHORIZATION_API}`, 'DELETE')).status, 200)

    const before = await scrape(broker.app.server)
    const { request } = await broker.as('Requester')
    const response = await request.post('/v1/vnets?wait=30').send(deployRequest('vnet-metrics-no-role'))
    assert.equal(response.status, 200, response.text)
    const operation = response.body as OperationBody
    assert.equal(operation.state, 'failed', response.text)
    assert.equal(operation.error?.code, 'LinkedAuthorizationFailed')

    const after = await scrape(broker.app.server)
    const delta = (metric: string, labels: Labels = {}) => after.value(metric, labels) - before.value(metric, labels)
    assert.equal(delta('ipam_broker_arm_errors_total', { code: 'LinkedAuthorizationFailed' }), 1)
    assert.equal(delta('ipam_broker_arm_requests_total', { method: 'PUT', status_code: '403' }), 1)
    const errors = after.sum('ipam_broker_arm_errors_total') - before.sum('ipam_broker_arm_errors_total')
    assert.equal(errors, 1, 'the code, not HTTP_403 besides')
    const failed = { kind: 'deploy', outcome: 'failed' }
    assert.equal(delta('ipam_broker_operations_total', failed), 1)
    assert.equal(delta('ipam_broker_operations_total', { kind: 'deploy', outcome: 'succeeded' }), 0)
    assert.equal(delta('ipam_broker_operation_duration_seconds_count', failed), 1)
    assert.equal(
      delta('ipam_broker_http_requests_total', { method: 'POST', route: '/v1/vnets', status_code: '200' }),
      1,
    )
    // A failed allocation holds no addresses.
    assert.equal(delta('ipam_broker_pool_allocated_addresses', { pool_id: POOL_RETAIL }), 0)
  })

  it("shows ARM's pool usage as last observed, approximately beyond 2^53", async () => {
    const v6 = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail-v6`
    broker.app.metrics.observePoolUsage(POOL_RETAIL, { total: '65536', allocated: '512', available: '65024' })
    broker.app.metrics.observePoolUsage(v6, { total: '18446744073709551616', allocated: '0' })
    let now = await scrape(broker.app.server)
    const gauge = (pool_id: string, kind: string) => now.value('ipam_broker_pool_arm_addresses', { pool_id, kind })
    assert.deepEqual(
      ['total', 'allocated', 'available'].map((kind) => gauge(POOL_RETAIL, kind)),
      [65536, 512, 65024],
    )
    assert.equal(gauge(v6, 'total'), 2 ** 64)
    assert.ok(!now.samples.some((s) => s.labels['pool_id'] === v6 && s.labels['kind'] === 'available'))

    // A later report without the available figure drops that series rather than leave it stale.
    broker.app.metrics.observePoolUsage(POOL_RETAIL, { total: '65536', allocated: '768' })
    now = await scrape(broker.app.server)
    assert.equal(gauge(POOL_RETAIL, 'allocated'), 768)
    assert.ok(!now.samples.some((s) => s.labels['pool_id'] === POOL_RETAIL && s.labels['kind'] === 'available'))
  })
})

describe('GET /metrics without Azure', () => {
  it('is served by the health-only app and never rate limited', async () => {
    const test = await buildTestApp({ http: { rateLimitPerMinute: 2 } })
    try {
      const agent = supertest(test.app.server)
      for (let i = 0; i < 5; i++) await agent.get('/metrics').expect(200)
      await agent.get('/healthz').expect(200)
      const text = (await agent.get('/metrics').expect(200)).text
      const scraped = new Scrape(text)
      assert.equal(
        scraped.value('ipam_broker_http_requests_total', { method: 'GET', route: '/healthz', status_code: '200' }),
        1,
      )
      // The ledger gauge is read from the database here too: every sample is a whole, non-negative number.
      for (const s of scraped.samples.filter((x) => x.name === 'ipam_broker_pool_allocated_addresses')) {
        assert.ok(Number.isInteger(s.value) && s.value >= 0, JSON.stringify(s))
      }
      assert.match(text, /^# TYPE ipam_broker_pool_allocated_addresses gauge$/m)
    } finally {
      await test.close()
    }
  })

  it('still answers when the ledger cannot be read, without the ledger gauge, and says why in the log', async () => {
    const warnings: unknown[] = []
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) })
    const metrics = new BrokerMetrics({ ledgerPoolUsage: () => Promise.reject(new Error('database down')), log })
    const scraped = new Scrape(await metrics.metrics())
    assert.equal(scraped.samples.filter((s) => s.name === 'ipam_broker_pool_allocated_addresses').length, 0)
    assert.ok(scraped.samples.some((s) => s.name === 'ipam_broker_process_cpu_user_seconds_total'))
    assert.equal(warnings.length, 1)
    assert.match(JSON.stringify(warnings[0]), /database down/)
  })
})
