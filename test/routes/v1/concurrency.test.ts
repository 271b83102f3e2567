import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'

// ARM throttles writes per subscription; the broker keeps at most SUBSCRIPTION_CONCURRENCY operations
// running per managed subscription, however many workers are free.

describe('per-subscription concurrency', () => {
  let broker: TestBroker
  before(async () => {
    broker = await startTestBroker({ workerConcurrency: 8, subscriptionConcurrency: 2 })
    broker.azure.emulator.state.lroDurationMs = 600
  })
  after(async () => broker.close())

  it('runs at most two operations at once in one subscription, and lists what it did', async () => {
    const { request } = await broker.as('Requester')
    const submitted = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        request.post('/v1/vnets').send({
          subscriptionId: DEMO_IDS.subscriptionB,
          resourceGroup: 'rg-retail-network',
          name: `vnet-per-sub-${i}`,
          location: 'westeurope',
          ipamAllocations: [
            { poolId: `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`, numberOfIpAddresses: '16' },
          ],
          team: 'throttle-test',
        }),
      ),
    )
    const ids = submitted.map((r) => r.body.id as string)
    for (const id of ids) {
      const { body } = await request.get(`/v1/operations/${id}?wait=30`).expect(200)
      assert.equal(body.state, 'succeeded', JSON.stringify(body))
    }
    const operations = await broker.prisma.operation.findMany({ where: { id: { in: ids } } })
    // The most operations running at any one moment, from their start and finish times.
    const moments = operations.flatMap((o) => [
      { at: o.startedAt!.getTime(), delta: 1 },
      { at: o.finishedAt!.getTime(), delta: -1 },
    ])
    moments.sort((a, b) => a.at - b.at || a.delta - b.delta)
    let running = 0
    let peak = 0
    for (const moment of moments) peak = Math.max(peak, (running += moment.delta))
    assert.equal(peak, 2, `peak of ${peak} operations at once`)

    const { body: list } = await request
      .get(`/v1/vnets?subscriptionId=${DEMO_IDS.subscriptionB}&state=active&limit=500`)
      .expect(200)
    const names = (list as { value: { name: string; team: string | null }[] }).value
      .filter((v) => v.team === 'throttle-test')
      .map((v) => v.name)
      .sort()
    assert.deepEqual(names, Array.from({ length: 8 }, (_, i) => `vnet-per-sub-${i}`).sort())
    const bad = await request.get('/v1/vnets?state=unknown')
    assert.equal(bad.status, 400)
  })
})
