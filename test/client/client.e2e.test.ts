import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import {
  BrokerProblemError,
  createBrokerClient,
  createVnet,
  getAllocation,
  listAllocations,
  type BrokerClient,
  type Operation,
  OperationTimeoutError,
  type TokenCredential,
  type VnetRequest,
} from '@ipam-broker/client'
import { DEMO_CALLERS, DEMO_IDS } from '../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { credential } from '../helpers/emulator.ts'

// The package as another service uses it, by its name (the workspace link), against a broker listening on a
// real port; the in-repo import resolves to its TypeScript sources (the @ipam-broker/source condition).

const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const vnetRequest = (name: string): VnetRequest => ({
  subscriptionId: DEMO_IDS.subscriptionB,
  resourceGroup: 'rg-retail-network',
  name,
  location: 'westeurope',
  ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
  team: 'retail-network',
})

interface Sent {
  route: string
  idempotencyKey: string | null
  authorization: string | null
}

describe('@ipam-broker/client against a running broker', () => {
  let broker: TestBroker
  let baseUrl: string
  let client: BrokerClient
  let tokenCalls = 0
  /** Every attempt that left the client, as the network saw it. */
  const sent: Sent[] = []
  /** Forward the next request to this route, then lose its answer as a reset connection would. */
  let loseAnswerTo: string | undefined
  let finished: Operation | undefined

  const network: typeof fetch = async (input, init) => {
    const request = new Request(input, init)
    const route = `${request.method} ${new URL(request.url).pathname}`
    sent.push({
      route,
      idempotencyKey: request.headers.get('idempotency-key'),
      authorization: request.headers.get('authorization'),
    })
    const response = await fetch(request)
    if (loseAnswerTo === route) {
      loseAnswerTo = undefined
      await response.body?.cancel()
      throw new TypeError('fetch failed (the test dropped the answer)')
    }
    return response
  }

  before(async () => {
    broker = await startTestBroker()
    baseUrl = await broker.app.listen({ port: 0, host: '127.0.0.1' })
    // The demo Requester app's own @azure/identity credential, counted: the client should ask it once.
    const identity = credential(broker.azure.emulator, DEMO_IDS.tenantA, DEMO_CALLERS.Requester)
    const counted: TokenCredential = {
      getToken: (scopes) => {
        tokenCalls++
        return identity.getToken(scopes)
      },
    }
    client = createBrokerClient({ baseUrl, credential: counted, fetch: network, retry: { baseDelayMs: 20 } })
  })
  after(async () => broker.close())

  it('requests a VNet, waits, reads it and its ledger, releases it and waits again', async () => {
    const submitted = await client.createVnet(vnetRequest('vnet-client-1'))
    assert.equal(submitted.kind, 'deploy')
    assert.match(submitted.idempotencyKey ?? '', UUID, 'the client sent an Idempotency-Key of its own')

    const progress: Operation[] = []
    const deployed = await client.waitForOperation(submitted, {
      timeoutMs: 60_000,
      onProgress: (operation) => progress.push(operation),
    })
    assert.equal(deployed.state, 'succeeded', JSON.stringify(deployed.error))
    assert.equal(deployed.id, submitted.id)
    assert.ok(progress.length >= 1)
    assert.equal(progress.at(-1), deployed)

    const vnet = await client.getVnet(deployed.virtualNetworkId)
    assert.equal(vnet.state, 'active')
    const prefixes = vnet.allocations.flatMap((allocation) => allocation.prefixes)
    assert.equal(prefixes.length, 1)
    assert.match(prefixes[0]!, /\/24$/, '256 addresses')
    assert.deepEqual((vnet.live as { addressPrefixes: string[] }).addressPrefixes, prefixes)

    // The ledger, through the generated SDK functions on the configured client.
    const { data: page } = await listAllocations({
      client: client.client,
      query: { virtualNetworkId: vnet.id, sort: 'createdAt', limit: 10 },
    })
    assert.equal(page.value.length, 1)
    const allocationId = page.value[0]!.id
    const { data: allocated } = await getAllocation({ client: client.client, path: { id: allocationId } })
    assert.equal(allocated.state, 'active')
    assert.deepEqual(
      allocated.events.map((event) => event.type),
      ['requested', 'deploying', 'allocated'],
    )
    assert.deepEqual(allocated.events[2]!.prefixes, prefixes)
    assert.equal(allocated.events[2]!.operationId, deployed.id)

    const releasing = await client.removeVnet(vnet.id, 'release')
    assert.equal(releasing.kind, 'release')
    assert.match(releasing.idempotencyKey ?? '', UUID)
    assert.notEqual(releasing.idempotencyKey, submitted.idempotencyKey, 'a fresh key per call')
    const released = await client.waitForOperation(releasing.id, { timeoutMs: 60_000 })
    assert.equal(released.state, 'succeeded', JSON.stringify(released.error))
    finished = released

    assert.equal((await client.getVnet(vnet.id)).state, 'released')
    const { data: history } = await getAllocation({ client: client.client, path: { id: allocationId } })
    assert.equal(history.state, 'released')
    assert.ok(history.releasedAt)
    assert.deepEqual(
      history.events.map((event) => event.type),
      ['requested', 'deploying', 'allocated', 'releasing', 'released'],
    )
    assert.equal(history.events.at(-1)!.operationId, released.id)

    // Releasing twice is the broker's 409, as a BrokerProblemError.
    await assert.rejects(client.removeVnet(vnet.id, 'release'), (error) => {
      assert.ok(error instanceof BrokerProblemError)
      assert.equal(error.status, 409)
      assert.equal(error.code, 'vnet-not-active')
      return true
    })

    // The key went with the calls that start operations, and only with them.
    for (const { route, idempotencyKey } of sent) {
      const starts = route === 'POST /v1/vnets' || route.startsWith('DELETE /v1/vnets/')
      assert.equal(idempotencyKey !== null, starts, `${route} ${idempotencyKey ?? 'without a key'}`)
    }
  })

  it('replays with the same Idempotency-Key: a caller-chosen key, and the same call sent again', async () => {
    const key = `client-e2e-${randomUUID()}`
    const first = await client.createVnet(vnetRequest('vnet-client-2'), { idempotencyKey: key })
    assert.equal(first.idempotencyKey, key)
    const { data: again, response } = await createVnet({
      client: client.client,
      body: vnetRequest('vnet-client-2'),
      headers: { 'idempotency-key': key },
    })
    assert.equal(again.id, first.id)
    assert.equal(response.headers.get('idempotent-replayed'), 'true')
    assert.equal(await broker.prisma.operation.count({ where: { idempotencyKey: key } }), 1)
    assert.equal((await client.waitForOperation(first, { timeoutMs: 60_000 })).state, 'succeeded')
  })

  it('retries a lost answer with the same key, so the broker starts one operation', async () => {
    const from = sent.length
    loseAnswerTo = 'POST /v1/vnets'
    const operation = await client.createVnet(vnetRequest('vnet-client-3'))
    const attempts = sent.slice(from).filter((s) => s.route === 'POST /v1/vnets')
    assert.equal(attempts.length, 2, 'the first answer was lost, the retry got one')
    assert.equal(attempts[0]!.idempotencyKey, attempts[1]!.idempotencyKey)
    assert.equal(operation.idempotencyKey, attempts[0]!.idempotencyKey)
    assert.equal(await broker.prisma.operation.count({ where: { idempotencyKey: operation.idempotencyKey } }), 1)
    assert.equal(await broker.prisma.virtualNetwork.count({ where: { name: 'vnet-client-3' } }), 1)
    assert.equal((await client.waitForOperation(operation, { timeoutMs: 60_000 })).state, 'succeeded')
  })

  it('turns error answers into BrokerProblemErrors with the problem details, without retrying them', async () => {
    const from = sent.length
    await assert.rejects(client.getVnet(randomUUID()), (error) => {
      assert.ok(error instanceof BrokerProblemError)
      assert.equal(error.name, 'BrokerProblemError')
      assert.equal(error.status, 404)
      assert.ok(error.title)
      assert.ok(error.type)
      assert.ok(error.detail)
      assert.ok(error.code)
      assert.ok(error.requestId)
      assert.match(error.message, /\(404\)/)
      return true
    })
    assert.equal(sent.length - from, 1, 'a 404 is not retried')

    await assert.rejects(client.createVnet({ ...vnetRequest('vnet-client-bad'), name: '-bad-' }), (error) => {
      assert.ok(error instanceof BrokerProblemError)
      assert.equal(error.status, 400)
      assert.equal(error.code, 'validation-failed')
      const errors = error.extensions['errors'] as { field: string }[]
      assert.ok(
        errors.some((e) => e.field === '/name'),
        JSON.stringify(errors),
      )
      return true
    })
  })

  it('takes a plain token function too; the Reader may read but not request', async () => {
    let asked = 0
    const reader = createBrokerClient({
      baseUrl,
      getToken: () => {
        asked++
        return broker.azure.token('Reader')
      },
    })
    const { value } = await reader.listVnets({ subscriptionId: DEMO_IDS.subscriptionB })
    assert.ok(value.some((vnet) => vnet.name === 'vnet-client-1'))
    await assert.rejects(reader.createVnet(vnetRequest('vnet-client-reader')), (error) => {
      assert.ok(error instanceof BrokerProblemError)
      assert.equal(error.status, 403)
      return true
    })
    assert.equal(asked, 2, 'a plain function is asked before every request')
  })

  it('waitForOperation rejects on timeout and on abort, and returns a finished operation at once', async () => {
    // A network that never answers, until the request is aborted.
    const silent = createBrokerClient({
      baseUrl,
      getToken: async () => 'unused',
      retry: false,
      fetch: (input) =>
        new Promise((_, reject) => {
          const { signal } = input as Request
          if (signal.aborted) reject(signal.reason as Error)
          signal.addEventListener('abort', () => reject(signal.reason as Error))
        }),
    })
    const id = randomUUID()
    await assert.rejects(silent.waitForOperation(id, { timeoutMs: 100 }), (error) => {
      assert.ok(error instanceof OperationTimeoutError)
      assert.equal(error.operationId, id)
      assert.match(error.message, /did not finish within 100 ms/)
      return true
    })
    const controller = new AbortController()
    const waiting = silent.waitForOperation(id, { signal: controller.signal })
    controller.abort(new Error('the caller gave up'))
    await assert.rejects(waiting, /the caller gave up/)

    assert.ok(finished, 'the first test finished an operation')
    const done = await client.getOperation(finished.id)
    assert.equal(done.state, 'succeeded')
    const from = sent.length
    assert.equal(await client.waitForOperation(done), done)
    assert.equal(sent.length, from, 'no poll for an operation that has finished')
  })

  it('asked the credential once for all of these calls, and sent its token with each', () => {
    assert.equal(tokenCalls, 1)
    const tokens = new Set(sent.map((s) => s.authorization))
    assert.equal(tokens.size, 1)
    assert.match([...tokens][0] ?? '', /^Bearer ey/)
    assert.ok(sent.length > 10)
  })
})
