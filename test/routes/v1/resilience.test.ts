import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { NetworkManagementClient } from '@azure/arm-network'
import type { RequestLogEntry } from '../../../emulator/common/pipeline.ts'
import { type DemoAzure, DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { credential } from '../../helpers/emulator.ts'

const pool = (name: string) => `${DEMO_IDS.networkManagerId}/ipamPools/${name}`
const RG_B = 'rg-retail-network'
const RG_C = 'rg-logistics-network'
const ARM_SCOPE = { scopes: ['https://management.azure.com/.default'] }

interface OperationBody {
  id: string
  state: string
  attempts: number
  error: { code: string; source: string; status: number | null; retrying?: boolean } | null
  result: { addressPrefixes: string[] } | null
}

interface Target {
  subscriptionId: string
  resourceGroup: string
  location: string
  poolId: string
}

const TENANT_B: Target = {
  subscriptionId: DEMO_IDS.subscriptionB,
  resourceGroup: RG_B,
  location: 'westeurope',
  poolId: pool('pool-retail'),
}
const TENANT_C: Target = {
  subscriptionId: DEMO_IDS.subscriptionC,
  resourceGroup: RG_C,
  location: 'northeurope',
  poolId: pool('pool-logistics'),
}

async function deploy(broker: TestBroker, name: string, target: Target = TENANT_B, wait = 30) {
  const { request } = await broker.as('Requester')
  const response = await request.post(`/v1/vnets?wait=${wait}`).send({
    subscriptionId: target.subscriptionId,
    resourceGroup: target.resourceGroup,
    name,
    location: target.location,
    ipamAllocations: [{ poolId: target.poolId, numberOfIpAddresses: '16' }],
    team: 'resilience',
    ticket: 'CHG-RES',
  })
  return { status: response.status, operation: response.body as OperationBody, text: response.text }
}

function assertSucceeded(deployed: { status: number; operation: OperationBody }) {
  assert.equal(deployed.status, 200, JSON.stringify(deployed.operation))
  assert.equal(deployed.operation.state, 'succeeded', JSON.stringify(deployed.operation))
  assert.equal(deployed.operation.result?.addressPrefixes.length, 1, JSON.stringify(deployed.operation))
}

/** The broker's own calls to Entra and Key Vault: the deployer app in any tenant, and its Key Vault identity. */
function brokerCost(azure: DemoAzure) {
  const { tokenRequests, secretReads } = azure.emulator.state.counters
  const tokens = Object.fromEntries(
    [...tokenRequests].filter(
      ([key]) => key.endsWith(`/${DEMO_IDS.deployerAppId}`) || key === `${DEMO_IDS.tenantA}/${DEMO_IDS.brokerAppId}`,
    ),
  )
  const reads = secretReads.get(`${DEMO_IDS.vault}/${DEMO_IDS.deployerSecretName}`) ?? 0
  return { tokens, tokenTotal: Object.values(tokens).reduce((sum, n) => sum + n, 0), secretReads: reads }
}

describe('client secret rotation', () => {
  let broker: TestBroker

  before(async () => {
    // A long secret cache: the broker still holds the old secret when Entra starts refusing it.
    broker = await startTestBroker({ secretCacheSeconds: 3600 })
    // Tenant C's side of the cross-tenant connection, accepted by its admin (the deployer is Network Contributor there).
    const inC = new NetworkManagementClient(
      credential(broker.azure.emulator, DEMO_IDS.tenantC, DEMO_IDS.deployerAppId),
      DEMO_IDS.subscriptionC,
      { endpoint: broker.azure.url, credentials: ARM_SCOPE },
    )
    await inC.subscriptionNetworkManagerConnections.createOrUpdate('nmc-contoso', {
      networkManagerId: DEMO_IDS.networkManagerId,
    })
  })
  after(async () => broker.close())

  it('picks up a rotated secret from Key Vault without a restart, and never logs it', async () => {
    assertSucceeded(await deploy(broker, 'vnet-rotation-b1'))

    // Rotation as an admin does it: a new password on the app, the old one removed, the new value as
    // a new version of the Key Vault secret.
    const { state } = broker.azure.emulator
    const app = state.applications.get(DEMO_IDS.deployerAppId)!
    const vault = state.vaults.get(DEMO_IDS.vault)!
    const old = app.passwords[0]!
    const rotated = state.addPassword(app, 'rotated')
    app.passwords.splice(app.passwords.indexOf(old), 1)
    state.setSecret(vault, DEMO_IDS.deployerSecretName, rotated.secretText)
    await assert.rejects(
      credential(broker.azure.emulator, DEMO_IDS.tenantC, DEMO_IDS.deployerAppId, old.secretText).getToken(
        ARM_SCOPE.scopes,
      ),
      /AADSTS7000215/,
    )

    // Tenant C has never been asked for a token, so no cached access token hides the rotation: the
    // broker presents its cached (old) secret, is refused, and reads Key Vault again.
    const readsBefore = brokerCost(broker.azure).secretReads
    const loginBefore = broker.azure.emulator.requestLog.entries.length
    const inC = await deploy(broker, 'vnet-rotation-c1', TENANT_C)
    assertSucceeded(inC)
    assert.equal(brokerCost(broker.azure).secretReads - readsBefore, 1, 'one more Key Vault read')
    const tokenCalls = broker.azure.emulator.requestLog.entries
      .slice(loginBefore)
      .filter((e) => e.service === 'login' && e.path === `/${DEMO_IDS.tenantC}/oauth2/v2.0/token`)
      .map((e) => e.status)
    assert.deepEqual(tokenCalls, [401, 200], 'refused with the old secret, then issued with the new one')

    const warnings = broker.logs.filter((line) =>
      String(line['msg']).includes('Entra refused the client secret; reading it again from Key Vault'),
    )
    assert.equal(warnings.length, 1, JSON.stringify(warnings))
    assert.equal(warnings[0]!['level'], 'warn')
    assert.equal(warnings[0]!['tenantId'], DEMO_IDS.tenantC)

    // Tenant B keeps working.
    assertSucceeded(await deploy(broker, 'vnet-rotation-b2'))

    const logText = JSON.stringify(broker.logs)
    assert.ok(!logText.includes(old.secretText), 'the old secret is not in the log')
    assert.ok(!logText.includes(rotated.secretText), 'the new secret is not in the log')
    assert.ok(!inC.text.includes(rotated.secretText))
  })
})

describe('cost of 100 deployments into one tenant pair', () => {
  let broker: TestBroker

  before(async () => {
    broker = await startTestBroker()
  })
  after(async () => broker.close())

  it('costs at most 4 token requests and 2 Key Vault reads, from a cold start', async (t) => {
    const before = brokerCost(broker.azure)
    // Nothing cached yet: the figures below include the first token and the first secret read.
    assert.deepEqual(before, { tokens: {}, tokenTotal: 0, secretReads: 0 })
    const started = Date.now()
    const operations: OperationBody[] = []
    for (let batch = 0; batch < 10; batch++) {
      const deployed = await Promise.all(
        Array.from({ length: 10 }, (_, i) => deploy(broker, `vnet-cost-${batch * 10 + i}`)),
      )
      for (const d of deployed) assertSucceeded(d)
      operations.push(...deployed.map((d) => d.operation))
    }
    const after = brokerCost(broker.azure)
    const tokenRequests = after.tokenTotal - before.tokenTotal
    const secretReads = after.secretReads - before.secretReads
    t.diagnostic(
      `100 deployments in ${Date.now() - started} ms: ${tokenRequests} token requests ${JSON.stringify(after.tokens)}, ${secretReads} Key Vault secret reads`,
    )
    assert.equal(operations.length, 100)
    assert.equal(new Set(operations.map((o) => o.id)).size, 100)
    assert.equal(new Set(operations.map((o) => o.result!.addressPrefixes[0])).size, 100, 'disjoint prefixes')
    assert.ok(tokenRequests >= 1 && tokenRequests <= 4, `${tokenRequests} token requests`)
    assert.ok(secretReads >= 1 && secretReads <= 2, `${secretReads} secret reads`)
  })
})

describe('ARM throttling and outages', () => {
  let broker: TestBroker

  before(async () => {
    broker = await startTestBroker({ retryLimit: 3 })
  })
  after(async () => broker.close())

  const armCalls = (method: string, pattern: RegExp, since: number): RequestLogEntry[] =>
    broker.azure.emulator.requestLog.entries
      .slice(since)
      .filter((e) => e.service === 'arm' && e.method === method && pattern.test(e.path))

  const gapMs = (from: RequestLogEntry, to: RequestLogEntry) => Date.parse(to.at) - Date.parse(from.at)

  it('rides out 429 (honouring Retry-After) and 503 on the PUT and on the polls', async (t) => {
    const { emulator } = broker.azure
    // Long enough that the SDK polls the operation at least once.
    emulator.state.lroDurationMs = 500
    const name = 'vnet-throttled-1'
    const put = { service: 'arm', method: 'PUT', pathPattern: `/virtualNetworks/${name}$` } as const
    const poll = {
      service: 'arm',
      method: 'GET',
      pathPattern: '/providers/Microsoft\\.Network/locations/[^/]+/operations/',
    } as const
    emulator.faults.add({ match: put, action: { kind: 'status', status: 429, retryAfterSeconds: 1 }, remaining: 1 })
    emulator.faults.add({ match: put, action: { kind: 'status', status: 503 }, remaining: 1 })
    emulator.faults.add({ match: poll, action: { kind: 'status', status: 429, retryAfterSeconds: 1 }, remaining: 1 })
    emulator.faults.add({ match: poll, action: { kind: 'status', status: 503 }, remaining: 1 })
    const since = emulator.requestLog.entries.length
    try {
      const deployed = await deploy(broker, name)
      assertSucceeded(deployed)
      assert.equal(deployed.operation.attempts, 1, "the SDK's own retries were enough")
    } finally {
      emulator.state.lroDurationMs = 0
    }
    assert.deepEqual(emulator.faults.list(), [], 'every injected fault was met')

    const puts = armCalls('PUT', new RegExp(`/virtualNetworks/${name}$`, 'i'), since)
    assert.deepEqual(
      puts.map((e) => e.status),
      [429, 503, 201],
    )
    assert.ok(
      gapMs(puts[0]!, puts[1]!) >= 1000,
      `PUT retried ${gapMs(puts[0]!, puts[1]!)} ms after a 429 with Retry-After: 1`,
    )

    const polls = armCalls('GET', /\/locations\/[^/]+\/operations\//i, since)
    assert.deepEqual(
      polls.slice(0, 2).map((e) => e.status),
      [429, 503],
    )
    assert.equal(polls.at(-1)?.status, 200)
    t.diagnostic(
      `after a 429 with Retry-After: 1, the PUT came again in ${gapMs(puts[0]!, puts[1]!)} ms, the poll in ${gapMs(polls[0]!, polls[1]!)} ms`,
    )
    assert.ok(
      gapMs(polls[0]!, polls[1]!) >= 1000,
      `poll retried ${gapMs(polls[0]!, polls[1]!)} ms after a 429 with Retry-After: 1`,
    )
  })

  it('an outage longer than the SDK retries is retried by the job queue until it succeeds', async (t) => {
    const { emulator } = broker.azure
    const name = 'vnet-outage-1'
    emulator.faults.add({
      match: { service: 'arm', method: 'PUT', pathPattern: `/virtualNetworks/${name}$` },
      action: { kind: 'status', status: 503 },
      remaining: 6,
    })
    const since = emulator.requestLog.entries.length
    const submitted = await deploy(broker, name, TENANT_B, 0)
    assert.equal(submitted.status, 202, JSON.stringify(submitted.operation))
    const { request } = await broker.as('Requester')

    // Meanwhile: the operation is not finished, and says that it is retrying a transient ARM failure.
    let retrying: OperationBody | undefined
    for (let i = 0; i < 100 && !retrying; i++) {
      const { body } = await request.get(`/v1/operations/${submitted.operation.id}`).expect(200)
      const view = body as OperationBody
      if (view.state === 'succeeded' || view.state === 'failed') break
      if (view.error?.retrying) retrying = view
      else await sleep(100)
    }
    assert.ok(retrying, 'the operation was seen retrying')
    assert.notEqual(retrying.state, 'succeeded')
    assert.equal(retrying.attempts, 1)
    assert.deepEqual(
      { source: retrying.error!.source, status: retrying.error!.status, code: retrying.error!.code },
      { source: 'arm', status: 503, code: 'ServiceUnavailable' },
    )

    const { body } = await request.get(`/v1/operations/${submitted.operation.id}?wait=30`).expect(200)
    const done = body as OperationBody
    assert.equal(done.state, 'succeeded', JSON.stringify(done))
    assert.ok(done.attempts >= 2, `${done.attempts} attempts`)
    assert.equal(done.error, null, 'a succeeded operation carries no error from an earlier attempt')
    t.diagnostic(`succeeded after ${done.attempts} attempts`)
    assert.equal(done.result?.addressPrefixes.length, 1)

    const puts = armCalls('PUT', new RegExp(`/virtualNetworks/${name}$`, 'i'), since).map((e) => e.status)
    assert.deepEqual(puts, [503, 503, 503, 503, 503, 503, 201])
  })
})
