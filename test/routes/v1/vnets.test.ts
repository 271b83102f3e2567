import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import { DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { credential } from '../../helpers/emulator.ts'

const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`
const RG_B = 'rg-retail-network'

describe('POST /v1/vnets: cross-tenant deployment end to end', () => {
  let broker: TestBroker
  let poolClient: NetworkManagementClient

  before(async () => {
    broker = await startTestBroker()
    // The network admin of tenant A reads pool usage independently of the broker.
    poolClient = new NetworkManagementClient(
      credential(broker.azure.emulator, DEMO_IDS.tenantA, 'f4f4f4f4-0000-4000-8000-0000000000f4'),
      DEMO_IDS.subscriptionA,
      { endpoint: broker.azure.url, credentials: { scopes: ['https://management.azure.com/.default'] } },
    )
  })
  after(async () => broker.close())

  const usage = async () => poolClient.ipamPools.getPoolUsage('rg-network-management', 'nm-contoso', 'pool-retail')

  it('deploys a VNet in tenant B from a pool of tenant A, and records it in the ledger', async () => {
    const before = await usage()
    const { request } = await broker.as('Requester')
    const response = await request.post('/v1/vnets?wait=30').send({
      subscriptionId: DEMO_IDS.subscriptionB,
      resourceGroup: RG_B,
      name: 'vnet-e2e-1',
      location: 'westeurope',
      ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
      subnets: [{ name: 'app', numberOfIpAddresses: '64' }],
      tags: { team: 'retail' },
      team: 'retail-network',
      ticket: 'CHG-1',
    })
    assert.equal(response.status, 200, JSON.stringify(response.body))
    const operation = response.body as {
      id: string
      state: string
      virtualNetworkId: string
      result: { allocations: { prefixes: string[] }[]; addressPrefixes: string[] }
    }
    assert.equal(operation.state, 'succeeded', JSON.stringify(operation))
    assert.match(response.headers['location'] as string, new RegExp(`/v1/operations/${operation.id}$`))
    const prefixes = operation.result.allocations.flatMap((a) => a.prefixes)
    assert.equal(prefixes.length, 1)

    // The VNet exists in tenant B with exactly the prefixes the broker reports.
    const vnetClient = new NetworkManagementClient(
      credential(broker.azure.emulator, DEMO_IDS.tenantB, DEMO_IDS.deployerAppId),
      DEMO_IDS.subscriptionB,
      { endpoint: broker.azure.url, credentials: { scopes: ['https://management.azure.com/.default'] } },
    )
    const vnet = await vnetClient.virtualNetworks.get(RG_B, 'vnet-e2e-1')
    assert.deepEqual(vnet.addressSpace?.addressPrefixes, prefixes)
    assert.equal(vnet.tags?.['team'], 'retail')

    // The pool in tenant A counts them.
    const after = await usage()
    assert.equal(BigInt(after.numberOfAllocatedIPAddresses!) - BigInt(before.numberOfAllocatedIPAddresses!), 256n)
    assert.ok(
      after.allocatedAddressPrefixes?.some((p) => p === prefixes[0] || prefixes[0]!.startsWith(p.split('/')[0]!)),
    )

    // The ledger: requested → deploying → allocated, with the prefix and ARM ids.
    const events = await broker.prisma.allocationEvent.findMany({
      where: { operationId: operation.id },
      orderBy: { id: 'asc' },
    })
    assert.deepEqual(
      events.map((e) => e.type),
      ['requested', 'deploying', 'allocated'],
    )
    assert.deepEqual(events[2]!.prefixes, prefixes)
    assert.ok(events[2]!.armRequestId)
    const allocation = await broker.prisma.allocation.findFirstOrThrow({
      where: { operationId: operation.id },
      include: { prefixes: true },
    })
    assert.equal(allocation.state, 'active')
    assert.deepEqual(
      allocation.prefixes.map((p) => p.prefix),
      prefixes,
    )

    // Steps carry ARM's ids; the operation's correlation id is ARM's correlation id.
    const { body: read } = await request.get(`/v1/operations/${operation.id}`).expect(200)
    const step = (read as { steps: { name: string; state: string; armRequestId: string; armCorrelationId: string }[] })
      .steps[0]!
    assert.equal(step.name, 'deploy-vnet')
    assert.equal(step.state, 'succeeded')
    assert.equal(step.armCorrelationId, operation.id)

    // GET /v1/vnets/{id}: the record beside the live state.
    const { body: record } = await request.get(`/v1/vnets/${operation.virtualNetworkId}`).expect(200)
    assert.equal((record as { state: string }).state, 'active')
    assert.deepEqual((record as { live: { addressPrefixes: string[] } }).live.addressPrefixes, prefixes)
  })
})
