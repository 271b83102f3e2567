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
    // The subnet is carved from the VNet's own allocation: 64 addresses at its start.
    const [base] = prefixes[0]!.split('/')
    assert.deepEqual(
      vnet.subnets?.map((s) => [s.name, s.addressPrefixes]),
      [['app', [`${base}/26`]]],
    )

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

  const deploy = async (name: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const { request } = await broker.as('Requester')
    return request
      .post('/v1/vnets?wait=30')
      .set(headers)
      .send({
        subscriptionId: DEMO_IDS.subscriptionB,
        resourceGroup: RG_B,
        name,
        location: 'westeurope',
        ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '128' }],
        ...extra,
      })
  }

  for (const mode of ['release', 'delete'] as const) {
    it(`${mode}: the space goes back to the pool and the ledger records it`, async () => {
      const before = await usage()
      const deployed = await deploy(`vnet-${mode}-1`)
      assert.equal(deployed.body.state, 'succeeded', JSON.stringify(deployed.body))
      const prefixes = (deployed.body as { result: { allocations: { prefixes: string[] }[] } }).result.allocations[0]!
        .prefixes
      assert.equal(
        BigInt((await usage()).numberOfAllocatedIPAddresses!),
        BigInt(before.numberOfAllocatedIPAddresses!) + 128n,
      )

      const { request } = await broker.as('Requester')
      const removed = await request.delete(`/v1/vnets/${deployed.body.virtualNetworkId}?mode=${mode}&wait=30`)
      assert.equal(removed.status, 200, JSON.stringify(removed.body))
      assert.equal(removed.body.kind, mode)
      assert.equal(removed.body.state, 'succeeded', JSON.stringify(removed.body))

      const after = await usage()
      assert.equal(after.numberOfAllocatedIPAddresses, before.numberOfAllocatedIPAddresses)
      assert.deepEqual(after.allocatedAddressPrefixes, before.allocatedAddressPrefixes)

      const vnetClient = new NetworkManagementClient(
        credential(broker.azure.emulator, DEMO_IDS.tenantB, DEMO_IDS.deployerAppId),
        DEMO_IDS.subscriptionB,
        { endpoint: broker.azure.url, credentials: { scopes: ['https://management.azure.com/.default'] } },
      )
      if (mode === 'release') {
        // The seed's removal: the VNet stays, with the same addresses as static prefixes.
        const vnet = await vnetClient.virtualNetworks.get(RG_B, `vnet-${mode}-1`)
        assert.deepEqual(vnet.addressSpace?.addressPrefixes, prefixes)
        assert.equal(vnet.addressSpace?.ipamPoolPrefixAllocations, undefined)
      } else {
        await assert.rejects(vnetClient.virtualNetworks.get(RG_B, `vnet-${mode}-1`), { statusCode: 404 })
      }

      const allocation = await broker.prisma.allocation.findFirstOrThrow({
        where: { virtualNetworkId: deployed.body.virtualNetworkId as string },
      })
      assert.equal(allocation.state, 'released')
      assert.ok(allocation.releasedAt)
      const events = await broker.prisma.allocationEvent.findMany({
        where: { allocationId: allocation.id },
        orderBy: { id: 'asc' },
      })
      assert.deepEqual(
        events.map((e) => e.type),
        ['requested', 'deploying', 'allocated', 'releasing', 'released'],
      )
      assert.deepEqual(events.at(-1)!.prefixes, prefixes)
      assert.equal(events.at(-1)!.operationId, removed.body.id)
      const { body: record } = await request.get(`/v1/vnets/${deployed.body.virtualNetworkId}`).expect(200)
      assert.equal((record as { state: string }).state, mode === 'release' ? 'released' : 'deleted')

      // Removing twice is refused with a clear conflict.
      const again = await request.delete(`/v1/vnets/${deployed.body.virtualNetworkId}?mode=${mode}`)
      assert.equal(again.status, 409)
      assert.equal(again.body.code, 'vnet-not-active')
    })
  }

  it('Idempotency-Key: the same request twice (also at once) is one operation and one VNet', async () => {
    const key = { 'idempotency-key': 'idem-vnet-1' }
    const [first, second] = await Promise.all([deploy('vnet-idem-1', {}, key), deploy('vnet-idem-1', {}, key)])
    assert.equal(first.body.id, second.body.id, 'one operation')
    const third = await deploy('vnet-idem-1', {}, key)
    assert.equal(third.body.id, first.body.id)
    assert.equal(third.headers['idempotent-replayed'], 'true')
    assert.equal(await broker.prisma.operation.count({ where: { idempotencyKey: 'idem-vnet-1' } }), 1)
    assert.equal(await broker.prisma.virtualNetwork.count({ where: { name: 'vnet-idem-1' } }), 1)
    const vnetPuts = broker.azure.emulator.requestLog.entries.filter(
      (e) => e.method === 'PUT' && e.path.toLowerCase().endsWith('/virtualnetworks/vnet-idem-1'),
    )
    assert.equal(vnetPuts.length, 1, 'one PUT reached ARM')

    const different = await deploy('vnet-idem-1', { tags: { other: 'body' } }, key)
    assert.equal(different.status, 422)
    assert.equal(different.body.code, 'idempotency-key-reused')

    // Without the key, a second request for a VNet the broker already manages is a conflict, not a second deployment.
    const conflict = await deploy('vnet-idem-1')
    assert.equal(conflict.status, 409)
    assert.equal(conflict.body.code, 'vnet-already-managed')
  })

  it('50 concurrent requests on one pool: 50 disjoint allocations, all in the ledger', async () => {
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        deploy(`vnet-burst-${i}`, { ipamAllocations: [{ id: POOL_RETAIL, numberOfIpAddresses: 32 }] }),
      ),
    )
    for (const response of responses) assert.equal(response.body.state, 'succeeded', JSON.stringify(response.body))
    const ids = responses.map((r) => r.body.id as string)
    const rows = await broker.prisma.allocationPrefix.findMany({ where: { allocation: { operationId: { in: ids } } } })
    assert.equal(rows.length, 50)
    const disjoint = await broker.prisma.$queryRaw<{ overlaps: bigint }[]>`
      SELECT count(*) AS overlaps FROM allocation_prefix a JOIN allocation_prefix b ON a.id < b.id AND a.prefix && b.prefix
      WHERE a.allocation_id IN (SELECT id FROM allocation WHERE operation_id::text = ANY(${ids}))
        AND b.allocation_id IN (SELECT id FROM allocation WHERE operation_id::text = ANY(${ids}))`
    assert.equal(disjoint[0]!.overlaps, 0n)
    const allocated = await broker.prisma.allocationEvent.count({
      where: { operationId: { in: ids }, type: 'allocated' },
    })
    assert.equal(allocated, 50)
  })

  const armClient = (tenantId: string, appId: string, subscriptionId: string) =>
    new NetworkManagementClient(credential(broker.azure.emulator, tenantId, appId), subscriptionId, {
      endpoint: broker.azure.url,
      credentials: { scopes: ['https://management.azure.com/.default'] },
    })
  const NETWORK_ADMIN_A = 'f4f4f4f4-0000-4000-8000-0000000000f4'

  const associate = async (name: string) => {
    const { request } = await broker.as('Requester')
    return request.post('/v1/vnets/associate?wait=30').send({
      subscriptionId: DEMO_IDS.subscriptionB,
      resourceGroup: RG_B,
      name,
      ipamAllocations: [{ pool: { id: POOL_RETAIL }, numberOfIpAddresses: '256' }],
    })
  }

  it('associates an existing VNet with a pool, keeping its tags and other settings', async () => {
    const tenantB = armClient(DEMO_IDS.tenantB, DEMO_IDS.deployerAppId, DEMO_IDS.subscriptionB)
    await tenantB.virtualNetworks.createOrUpdate(RG_B, 'vnet-brownfield-1', {
      location: 'westeurope',
      tags: { owner: 'retail', costCentre: 'cc-42' },
      addressSpace: { addressPrefixes: ['172.30.0.0/24'] },
      dhcpOptions: { dnsServers: ['172.30.0.4'] },
      enableDdosProtection: false,
    })
    const response = await associate('vnet-brownfield-1')
    assert.equal(response.status, 200, JSON.stringify(response.body))
    assert.equal(response.body.kind, 'associate')
    assert.equal(response.body.state, 'succeeded', JSON.stringify(response.body))
    const prefixes = (response.body as { result: { allocations: { prefixes: string[] }[] } }).result.allocations[0]!
      .prefixes

    const vnet = await tenantB.virtualNetworks.get(RG_B, 'vnet-brownfield-1')
    assert.deepEqual(vnet.addressSpace?.addressPrefixes, prefixes)
    assert.ok(prefixes.every((p) => p.startsWith('10.16.')))
    assert.equal(vnet.addressSpace?.ipamPoolPrefixAllocations?.[0]?.numberOfIpAddresses, '256')
    assert.deepEqual(vnet.tags, { owner: 'retail', costCentre: 'cc-42' })
    assert.deepEqual(vnet.dhcpOptions?.dnsServers, ['172.30.0.4'])

    const associated = []
    for await (const resource of armClient(
      DEMO_IDS.tenantA,
      NETWORK_ADMIN_A,
      DEMO_IDS.subscriptionA,
    ).ipamPools.listAssociatedResources('rg-network-management', 'nm-contoso', 'pool-retail')) {
      associated.push(resource)
    }
    assert.ok(associated.some((r) => r.resourceId?.toLowerCase() === vnet.id?.toLowerCase()))

    const record = await broker.prisma.virtualNetwork.findUniqueOrThrow({
      where: { id: response.body.virtualNetworkId as string },
    })
    assert.equal(record.state, 'active')
    assert.equal(record.location, 'westeurope')
    const events = await broker.prisma.allocationEvent.findMany({
      where: { operationId: response.body.id as string },
      orderBy: { id: 'asc' },
    })
    assert.deepEqual(
      events.map((e) => e.type),
      ['requested', 'deploying', 'allocated'],
    )
  })

  it('refuses to associate a VNet whose subnets would fall outside the new space, and leaves it untouched', async () => {
    const tenantB = armClient(DEMO_IDS.tenantB, DEMO_IDS.deployerAppId, DEMO_IDS.subscriptionB)
    await tenantB.virtualNetworks.createOrUpdate(RG_B, 'vnet-brownfield-2', {
      location: 'westeurope',
      tags: { owner: 'retail' },
      addressSpace: { addressPrefixes: ['172.31.0.0/16'] },
      subnets: [{ name: 'workloads', addressPrefix: '172.31.1.0/24' }],
    })
    const before = await tenantB.virtualNetworks.get(RG_B, 'vnet-brownfield-2')
    const poolBefore = await usage()
    const response = await associate('vnet-brownfield-2')
    assert.equal(response.body.state, 'failed', JSON.stringify(response.body))
    const error = response.body.error as { code: string; advice: string; armRequestId: string | null }
    assert.equal(error.code, 'NetcfgSubnetRangeOutsideVnet')
    assert.match(error.advice, /subnets/)
    assert.ok(error.armRequestId)
    const after = await tenantB.virtualNetworks.get(RG_B, 'vnet-brownfield-2')
    assert.deepEqual(after, before)
    assert.deepEqual(await usage(), poolBefore)
    const allocations = await broker.prisma.allocation.findMany({
      where: { operationId: response.body.id as string },
      include: { prefixes: true },
    })
    assert.deepEqual(
      allocations.map((a) => [a.state, a.prefixes.length]),
      [['failed', 0]],
    )
  })

  for (const mode of ['release', 'delete'] as const) {
    it(`network groups: a deployment naming a group makes the VNet a static member; ${mode} takes it out`, async () => {
      const members = async () => {
        const found = []
        for await (const member of armClient(
          DEMO_IDS.tenantA,
          NETWORK_ADMIN_A,
          DEMO_IDS.subscriptionA,
        ).staticMembers.list('rg-network-management', 'nm-contoso', 'ng-retail-spokes')) {
          found.push(member.resourceId?.toLowerCase())
        }
        return found
      }
      const deployed = await deploy(`vnet-grouped-${mode}`, { networkGroups: ['ng-retail-spokes'] })
      assert.equal(deployed.body.state, 'succeeded', JSON.stringify(deployed.body))
      const vnetId = (deployed.body.vnetResourceId as string).toLowerCase()
      assert.ok((await members()).includes(vnetId), 'the VNet is a static member of ng-retail-spokes')
      const steps = (deployed.body.steps as { name: string; state: string }[]).map((s) => `${s.name}:${s.state}`)
      assert.deepEqual(steps, ['deploy-vnet:succeeded', 'join-network-group ng-retail-spokes:succeeded'])

      const { request } = await broker.as('Requester')
      const removed = await request.delete(`/v1/vnets/${deployed.body.virtualNetworkId}?mode=${mode}&wait=30`)
      assert.equal(removed.body.state, 'succeeded', JSON.stringify(removed.body))
      assert.ok(!(await members()).includes(vnetId), 'the membership is gone')
    })
  }

  it('refuses a network group of another network manager, and a pool the management tenant does not offer', async () => {
    const group = await deploy('vnet-bad-group', {
      networkGroups: [
        '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-other/providers/Microsoft.Network/networkManagers/nm-other/networkGroups/ng-x',
      ],
    })
    assert.equal(group.status, 422)
    assert.equal(group.body.code, 'network-group-outside-network-manager')
    const pool = await deploy('vnet-bad-pool', {
      ipamAllocations: [{ poolId: `${DEMO_IDS.networkManagerId}/ipamPools/pool-root`, numberOfIpAddresses: '16' }],
    })
    assert.equal(pool.status, 422)
    assert.equal(pool.body.code, 'pool-not-offered')
    assert.equal(
      await broker.prisma.virtualNetwork.count({ where: { name: { in: ['vnet-bad-group', 'vnet-bad-pool'] } } }),
      0,
    )
  })
})
