import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import { auxiliaryAuthenticationHeaderPolicy, type RestError } from '@azure/core-rest-pipeline'
import type { Emulator } from '../../emulator/index.ts'
import { credential, DEMO, startTestEmulator } from '../helpers/emulator.ts'

const ARM_SCOPE = 'https://management.azure.com/.default'
const NM = 'nm-contoso'

describe('emulator: IPAM pools and VNets through @azure/arm-network', () => {
  let emulator: Emulator
  let admin: NetworkManagementClient
  let deployer: NetworkManagementClient
  let deployerWithoutAux: NetworkManagementClient

  const client = (tenant: string, app: string, subscription: string, auxiliaryTenant?: string) =>
    new NetworkManagementClient(credential(emulator, tenant, app), subscription, {
      endpoint: emulator.url,
      credentials: { scopes: [ARM_SCOPE] },
      // The cross-tenant header comes from the SDK pipeline, as the broker will send it.
      ...(auxiliaryTenant && {
        additionalPolicies: [
          {
            policy: auxiliaryAuthenticationHeaderPolicy({
              credentials: [credential(emulator, auxiliaryTenant, app)],
              scopes: ARM_SCOPE,
            }),
            position: 'perRetry' as const,
          },
        ],
      }),
    })

  const vnet = (name: string, numberOfIpAddresses: string, poolId: string = DEMO.poolRetail) =>
    deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, name, {
      location: 'westeurope',
      tags: { team: 'retail' },
      addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses, id: poolId }] },
    })

  const usage = () => admin.ipamPools.getPoolUsage(DEMO.resourceGroupA, NM, 'pool-retail')

  before(async () => {
    emulator = await startTestEmulator()
    admin = client(DEMO.tenantA, DEMO.adminAppId, DEMO.subscriptionA)
    deployer = client(DEMO.tenantB, DEMO.deployerAppId, DEMO.subscriptionB, DEMO.tenantA)
    deployerWithoutAux = client(DEMO.tenantB, DEMO.deployerAppId, DEMO.subscriptionB)
    await admin.networkManagers.createOrUpdate(DEMO.resourceGroupA, NM, {
      location: 'westeurope',
      description: 'Contoso IP plan',
    })
    await admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-root', {
      location: 'westeurope',
      properties: { addressPrefixes: ['10.0.0.0/8'], displayName: 'Contoso root' },
    })
    await admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-retail', {
      location: 'westeurope',
      properties: { addressPrefixes: ['10.16.0.0/16'], parentPoolName: 'pool-root' },
    })
  })
  after(async () => emulator.close())

  it('builds a pool hierarchy: children inside their parent, siblings disjoint, usage counted as strings', async () => {
    // Created through ARM as an owner would; the demo seed's hierarchy is checked below.
    const created = await admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-lab', {
      location: 'westeurope',
      properties: { addressPrefixes: ['10.48.0.0/20'], parentPoolName: 'pool-root', displayName: 'Lab' },
    })
    assert.equal(created.properties.provisioningState, 'Succeeded')
    const renamed = await admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-lab', {
      location: 'westeurope',
      properties: { addressPrefixes: ['10.48.0.0/20'], parentPoolName: 'pool-root', displayName: 'Lab (renamed)' },
    })
    assert.equal(renamed.properties.displayName, 'Lab (renamed)')
    assert.equal(renamed.properties.provisioningState, 'Succeeded', 'the update was polled to its end')
    const patched = await admin.ipamPools.update(DEMO.resourceGroupA, NM, 'pool-lab', {
      body: { tags: { owner: 'sre' }, properties: { description: 'lab space' } },
    })
    assert.deepEqual([patched.tags, patched.properties.description], [{ owner: 'sre' }, 'lab space'])
    await admin.ipamPools.beginDeleteAndWait(DEMO.resourceGroupA, NM, 'pool-lab')

    const pool = await admin.ipamPools.get(DEMO.resourceGroupA, NM, 'pool-retail')
    assert.deepEqual(pool.properties.ipAddressType, ['IPv4'])
    assert.equal(pool.properties.parentPoolName, 'pool-root')
    const root = await admin.ipamPools.getPoolUsage(DEMO.resourceGroupA, NM, 'pool-root')
    assert.equal(root.totalNumberOfIPAddresses, '16777216')
    assert.equal(root.numberOfAllocatedIPAddresses, '131072')
    assert.deepEqual(
      root.childPools?.map((c) => c.addressPrefixes),
      [['10.16.0.0/16'], ['10.32.0.0/16']],
    )
    const v6 = await admin.ipamPools.getPoolUsage(DEMO.resourceGroupA, NM, 'pool-root-v6')
    assert.equal(v6.totalNumberOfIPAddresses, (2n ** 80n).toString())
    assert.equal(v6.numberOfAllocatedIPAddresses, (2n ** 76n).toString())

    const overlap = admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-overlap', {
      location: 'westeurope',
      properties: { addressPrefixes: ['10.16.128.0/17'], parentPoolName: 'pool-root' },
    })
    await assert.rejects(overlap, (err: RestError) => err.code === 'PoolAddressPrefixesOverlap')
    const outside = admin.ipamPools.beginCreateAndWait(DEMO.resourceGroupA, NM, 'pool-outside', {
      location: 'westeurope',
      properties: { addressPrefixes: ['192.168.0.0/24'], parentPoolName: 'pool-root' },
    })
    await assert.rejects(outside, (err: RestError) => err.code === 'PoolAddressPrefixesNotInParent')

    const names = []
    for await (const p of admin.ipamPools.list(DEMO.resourceGroupA, NM)) names.push(p.name)
    assert.deepEqual(names.sort(), ['pool-logistics', 'pool-retail', 'pool-retail-v6', 'pool-root', 'pool-root-v6'])
  })

  it('deploys a VNet in tenant B from a pool in tenant A with the auxiliary token (LRO to Succeeded)', async () => {
    const before = await usage()
    const created = await vnet('vnet-retail-1', '144')
    assert.equal(created.provisioningState, 'Succeeded')
    // 144 = 128 + 16: a /25 and a /28, lowest free space first.
    assert.deepEqual(created.addressSpace?.ipamPoolPrefixAllocations?.[0]?.allocatedAddressPrefixes, [
      '10.16.0.0/25',
      '10.16.0.128/28',
    ])
    assert.deepEqual(created.addressSpace?.addressPrefixes, ['10.16.0.0/25', '10.16.0.128/28'])
    const after = await usage()
    assert.equal(BigInt(after.numberOfAllocatedIPAddresses!) - BigInt(before.numberOfAllocatedIPAddresses!), 144n)
    assert.equal(
      BigInt(after.totalNumberOfIPAddresses!),
      BigInt(after.numberOfAllocatedIPAddresses!) + BigInt(after.numberOfAvailableIPAddresses!),
    )
    const associated = []
    for await (const a of admin.ipamPools.listAssociatedResources(DEMO.resourceGroupA, NM, 'pool-retail'))
      associated.push(a)
    assert.equal(associated.length, 1)
    assert.match(associated[0]!.resourceId ?? '', /virtualNetworks\/vnet-retail-1$/)
    assert.equal(associated[0]!.totalNumberOfIPAddresses, '144')
  })

  it('refuses the cross-tenant allocation without an auxiliary token, and without IPAM Pool User on the pool', async () => {
    await assert.rejects(
      deployerWithoutAux.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-no-aux', {
        location: 'westeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: DEMO.poolRetail }] },
      }),
      (err: RestError) => err.statusCode === 403 && err.code === 'LinkedAuthorizationFailed',
    )
    const rootPool: string = DEMO.poolRetail.replace('pool-retail', 'pool-root')
    await assert.rejects(
      vnet('vnet-root', '64', rootPool),
      (err: RestError) => err.code === 'LinkedAuthorizationFailed' && /does not have permission/.test(err.message),
    )
  })

  it('answers ARM validation errors for duplicate pools, static + pool, unknown pools and exhaustion', async () => {
    const put = (addressSpace: object) =>
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-bad', {
        location: 'westeurope',
        addressSpace,
      })
    await assert.rejects(
      put({
        ipamPoolPrefixAllocations: [
          { numberOfIpAddresses: '16', id: DEMO.poolRetail },
          { numberOfIpAddresses: '16', id: DEMO.poolRetail },
        ],
      }),
      (e: RestError) => e.code === 'CannotHaveDuplicatePoolIds',
    )
    await assert.rejects(
      put({
        addressPrefixes: ['172.16.0.0/24'],
        ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '16', id: DEMO.poolRetail }],
      }),
      (e: RestError) => e.code === 'CannotMixAddressPrefixAndPoolInPayload',
    )
    await assert.rejects(
      put({ ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '16', id: `${DEMO.poolRetail}-nope` }] }),
      (e: RestError) => /Pool with ARM ID .* not found/.test(e.message),
    )
    const before = await usage()
    await assert.rejects(
      vnet('vnet-huge', '70000'),
      (e: RestError) => e.code === 'IpamPoolExhausted' && /cannot provide 70000 addresses/.test(e.message),
    )
    assert.deepEqual(await usage(), before, 'a refused request takes nothing')
  })

  it('gives the space back when the VNet is put back to static prefixes or deleted', async () => {
    const before = await usage()
    await vnet('vnet-temp', '256')
    await vnet('vnet-temp-2', '64')
    const released = await deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-temp', {
      location: 'westeurope',
      addressSpace: { addressPrefixes: ['172.16.0.0/24'] },
    })
    assert.deepEqual(released.addressSpace?.addressPrefixes, ['172.16.0.0/24'])
    await deployer.virtualNetworks.beginDeleteAndWait(DEMO.resourceGroupB, 'vnet-temp-2')
    await assert.rejects(
      deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-temp-2'),
      (e: RestError) => e.statusCode === 404 && e.code === 'ResourceNotFound',
    )
    assert.deepEqual(await usage(), before)
  })

  it('takes IPv4 and IPv6 from one pool each; two pools of one family are refused', async () => {
    const v6Pool = DEMO.poolRetail.replace('pool-retail', 'pool-retail-v6')
    const dual = await deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-dual', {
      location: 'westeurope',
      addressSpace: {
        ipamPoolPrefixAllocations: [
          { numberOfIpAddresses: '256', id: DEMO.poolRetail },
          { numberOfIpAddresses: (2n ** 64n).toString(), id: v6Pool },
        ],
      },
    })
    assert.deepEqual(dual.addressSpace?.ipamPoolPrefixAllocations?.[1]?.allocatedAddressPrefixes, [
      'fd00:0:0:1000::/64',
    ])
    const root: string = DEMO.poolRetail.replace('pool-retail', 'pool-logistics')
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-two-v4', {
        location: 'westeurope',
        addressSpace: {
          ipamPoolPrefixAllocations: [
            { numberOfIpAddresses: '16', id: DEMO.poolRetail },
            { numberOfIpAddresses: '16', id: root },
          ],
        },
      }),
      (e: RestError) => /only one association of each IP type is allowed/.test(e.message),
    )
  })

  it('needs a connected cross-tenant scope: Pending until the managed side accepts', async () => {
    const logisticsPool: string = DEMO.poolRetail.replace('pool-retail', 'pool-logistics')
    const inC = client(DEMO.tenantC, DEMO.deployerAppId, DEMO.subscriptionC, DEMO.tenantA)
    const put = () =>
      inC.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupC, 'vnet-logistics-1', {
        location: 'northeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: logisticsPool }] },
      })
    const scope = await admin.scopeConnections.get(DEMO.resourceGroupA, NM, 'sc-logistics')
    assert.equal(scope.connectionState, 'Pending')
    await assert.rejects(put(), (e: RestError) => e.code === 'SubscriptionNotInNetworkManagerScope')

    const accepted = await inC.subscriptionNetworkManagerConnections.createOrUpdate('nmc-contoso', {
      networkManagerId: DEMO.networkManagerId,
    })
    assert.equal(accepted.connectionState, 'Connected')
    assert.equal(
      (await admin.scopeConnections.get(DEMO.resourceGroupA, NM, 'sc-logistics')).connectionState,
      'Connected',
    )
    assert.deepEqual((await put()).addressSpace?.addressPrefixes, ['10.32.0.0/26'])
  })

  it('adds a VNet of a connected tenant as a static member of a network group', async () => {
    const member = await vnet('vnet-member', '16')
    const added = await admin.staticMembers.createOrUpdate(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'vnet-member', {
      resourceId: member.id!,
    })
    assert.equal(added.resourceId, member.id)
    const members = []
    for await (const m of admin.staticMembers.list(DEMO.resourceGroupA, NM, 'ng-retail-spokes'))
      members.push(m.resourceId)
    assert.deepEqual(members, [member.id])
    await admin.staticMembers.delete(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'vnet-member')
    await assert.rejects(
      admin.staticMembers.get(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'vnet-member'),
      (e: RestError) => e.statusCode === 404,
    )
  })

  it('holds static CIDRs in a pool as reserved space, by prefix or by count', async () => {
    const before = await usage()
    const onPrem = await admin.staticCidrs.create(DEMO.resourceGroupA, NM, 'pool-retail', 'on-prem', {
      body: { properties: { addressPrefixes: ['10.16.255.0/24'], description: 'datacentre range' } },
    })
    assert.equal(onPrem.properties?.totalNumberOfIPAddresses, '256')
    const counted = await admin.staticCidrs.create(DEMO.resourceGroupA, NM, 'pool-retail', 'reserved-32', {
      body: { properties: { numberOfIPAddressesToAllocate: '32' } },
    })
    assert.equal(counted.properties?.addressPrefixes?.length, 1)
    await assert.rejects(
      admin.staticCidrs.create(DEMO.resourceGroupA, NM, 'pool-retail', 'clash', {
        body: { properties: { addressPrefixes: ['10.16.255.128/25'] } },
      }),
      (e: RestError) => e.code === 'StaticCidrConflict',
    )
    const held = await usage()
    assert.equal(held.numberOfReservedIPAddresses, '288')
    assert.ok(held.reservedAddressPrefixes?.includes('10.16.255.0/24'))
    assert.equal(
      BigInt(held.totalNumberOfIPAddresses!),
      BigInt(held.numberOfAllocatedIPAddresses!) +
        BigInt(held.numberOfReservedIPAddresses) +
        BigInt(held.numberOfAvailableIPAddresses!),
    )
    await admin.staticCidrs.beginDeleteAndWait(DEMO.resourceGroupA, NM, 'pool-retail', 'on-prem')
    await admin.staticCidrs.beginDeleteAndWait(DEMO.resourceGroupA, NM, 'pool-retail', 'reserved-32')
    assert.deepEqual(await usage(), before)
  })

  it('carves subnets from the VNet space of the same pool, and refuses subnets on other pools', async () => {
    const created = await deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnets', {
      location: 'westeurope',
      addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '256', id: DEMO.poolRetail }] },
      subnets: [
        { name: 'app', ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '80', id: DEMO.poolRetail }] },
        { name: 'db', ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '32', id: DEMO.poolRetail }] },
      ],
    })
    const [space] = created.addressSpace?.addressPrefixes ?? []
    const base = space!.split('/')[0]!.split('.').slice(0, 3).join('.')
    // 80 = 64 + 16: a /26 and a /28 (as ARM answers), then the next subnet lowest-first.
    assert.deepEqual(created.subnets?.[0]?.addressPrefixes, [`${base}.0/26`, `${base}.64/28`])
    assert.deepEqual(created.subnets?.[1]?.addressPrefixes, [`${base}.96/27`])
    const logistics: string = DEMO.poolRetail.replace('pool-retail', 'pool-logistics')
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnets-bad', {
        location: 'westeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: DEMO.poolRetail }] },
        subnets: [{ name: 'x', ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '16', id: logistics }] }],
      }),
      (e: RestError) => e.code === 'SubnetPoolsMustBeSubsetOfVnetPools',
    )
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnets-big', {
        location: 'westeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: DEMO.poolRetail }] },
        subnets: [{ name: 'x', ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '128', id: DEMO.poolRetail }] }],
      }),
      (e: RestError) => e.code === 'SubnetIpamAllocationExceedsVirtualNetworkSpace',
    )
  })

  it('a deployment that ends Failed holds no space in the pool', async () => {
    const before = await usage()
    emulator.faults.add({
      match: { service: 'arm', method: 'PUT', pathPattern: 'virtualNetworks/vnet-doomed$' },
      action: { kind: 'lro-fail', code: 'InternalServerError', message: 'The deployment failed.' },
      remaining: 1,
    })
    await assert.rejects(vnet('vnet-doomed', '64'), /InternalServerError/)
    assert.equal((await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-doomed')).provisioningState, 'Failed')
    assert.deepEqual(await usage(), before)
  })

  it('polls InProgress until the configured operation duration has passed', async () => {
    emulator.state.lroDurationMs = 1500
    try {
      const poller = await deployer.virtualNetworks.beginCreateOrUpdate(DEMO.resourceGroupB, 'vnet-slow', {
        location: 'westeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '32', id: DEMO.poolRetail }] },
      })
      assert.equal((await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-slow')).provisioningState, 'Updating')
      const started = Date.now()
      const done = await poller.pollUntilDone()
      assert.equal(done.provisioningState, 'Succeeded')
      assert.ok(Date.now() - started >= 500, 'the SDK waited for the operation')
    } finally {
      emulator.state.lroDurationMs = 0
    }
  })

  // A brownfield VNet as a team built it: static space, a static subnet, tags.
  const brownfield = (name: string) =>
    deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, name, {
      location: 'westeurope',
      tags: { team: 'retail', costCentre: '42' },
      addressSpace: { addressPrefixes: ['192.168.0.0/16'] },
      subnets: [{ name: 'workload', addressPrefix: '192.168.1.0/24' }],
    })
  const associatedIds = async () => {
    const ids = []
    for await (const a of admin.ipamPools.listAssociatedResources(DEMO.resourceGroupA, NM, 'pool-retail'))
      ids.push(a.resourceId)
    return ids
  }

  it('refuses static subnets outside the VNet space (NetcfgSubnetRangeOutsideVnet) and malformed subnet prefixes', async () => {
    const before = await usage()
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnet-outside', {
        location: 'westeurope',
        addressSpace: { addressPrefixes: ['172.20.0.0/24'] },
        subnets: [
          { name: 'inside', addressPrefix: '172.20.0.0/25' },
          { name: 'outside', addressPrefixes: ['172.20.0.128/25', '172.20.1.0/25'] },
        ],
      }),
      (e: RestError) =>
        e.statusCode === 400 &&
        e.code === 'NetcfgSubnetRangeOutsideVnet' &&
        e.message ===
          "Subnet 'outside' is not valid because its IP address range is outside the IP address range of virtual network 'vnet-subnet-outside'.",
    )
    // A static subnet next to a pool allocation must lie inside what the pool gave.
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnet-outside', {
        location: 'westeurope',
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: DEMO.poolRetail }] },
        subnets: [{ name: 'static', addressPrefix: '172.20.0.0/26' }],
      }),
      (e: RestError) => e.statusCode === 400 && e.code === 'NetcfgSubnetRangeOutsideVnet',
    )
    assert.deepEqual(await usage(), before, 'the allocation made for the refused PUT went back to the pool')
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-subnet-outside', {
        location: 'westeurope',
        addressSpace: { addressPrefixes: ['172.20.0.0/24'] },
        subnets: [{ name: 'typo', addressPrefix: '172.20.0.300/25' }],
      }),
      (e: RestError) =>
        e.statusCode === 400 &&
        e.code === 'InvalidAddressPrefixFormat' &&
        e.message ===
          `Address prefix 172.20.0.300/25 of resource /subscriptions/${DEMO.subscriptionB}/resourceGroups/${DEMO.resourceGroupB}/providers/Microsoft.Network/virtualNetworks/vnet-subnet-outside/subnets/typo is not formatted correctly.`,
    )
    await assert.rejects(
      deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-subnet-outside'),
      (e: RestError) => e.statusCode === 404,
    )
  })

  it('refuses to associate a VNet whose static subnets would fall outside the pool allocation, changing nothing', async () => {
    await brownfield('vnet-brownfield')
    const existing = await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-brownfield')
    const before = await usage()
    // What a broker does to "associate": read the VNet, swap its address space for a pool allocation.
    await assert.rejects(
      deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, 'vnet-brownfield', {
        ...existing,
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '256', id: DEMO.poolRetail }] },
      }),
      (e: RestError) =>
        e.statusCode === 400 &&
        e.code === 'NetcfgSubnetRangeOutsideVnet' &&
        /Subnet 'workload' .* virtual network 'vnet-brownfield'/.test(e.message),
    )
    assert.deepEqual(await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-brownfield'), existing)
    assert.deepEqual(await usage(), before)
    assert.ok(!(await associatedIds()).includes(existing.id!))
  })

  it('associates the same VNet once it has no static subnets, keeping its tags', async () => {
    await brownfield('vnet-brownfield')
    const { subnets: _subnets, ...existing } = await deployer.virtualNetworks.get(
      DEMO.resourceGroupB,
      'vnet-brownfield',
    )
    const associated = await deployer.virtualNetworks.beginCreateOrUpdateAndWait(
      DEMO.resourceGroupB,
      'vnet-brownfield',
      {
        ...existing,
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '256', id: DEMO.poolRetail }] },
      },
    )
    assert.equal(associated.provisioningState, 'Succeeded')
    assert.deepEqual(associated.tags, { team: 'retail', costCentre: '42' })
    assert.equal(associated.resourceGuid, existing.resourceGuid)
    const [space] = associated.addressSpace?.addressPrefixes ?? []
    assert.match(space ?? '', /^10\.16\.\d+\.0\/24$/)
    assert.deepEqual(associated.subnets, [])
    assert.ok((await associatedIds()).includes(existing.id!))
  })

  it('lets the deployer (token for A, auxiliary token for B) add and remove a static member from B', async () => {
    const inA = client(DEMO.tenantA, DEMO.deployerAppId, DEMO.subscriptionA, DEMO.tenantB)
    const member = await vnet('vnet-spoke-member', '16')
    const added = await inA.staticMembers.createOrUpdate(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'spoke', {
      resourceId: member.id!,
    })
    assert.equal(added.resourceId, member.id)
    assert.equal(
      (await admin.staticMembers.get(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'spoke')).resourceId,
      member.id,
    )
    await inA.staticMembers.delete(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'spoke')
    await assert.rejects(
      admin.staticMembers.get(DEMO.resourceGroupA, NM, 'ng-retail-spokes', 'spoke'),
      (e: RestError) => e.statusCode === 404,
    )
  })
})
