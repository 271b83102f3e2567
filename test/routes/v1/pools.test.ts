import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import { auxiliaryAuthenticationHeaderPolicy } from '@azure/core-rest-pipeline'
import { DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { scratchDatabase } from '../../helpers/database.ts'
import { credential } from '../../helpers/emulator.ts'

const ARM_SCOPE = 'https://management.azure.com/.default'
const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`
const RG_B = 'rg-retail-network'

interface UsageBody {
  pool: { id: string; name: string; addressPrefixes: string[] }
  arm: {
    totalNumberOfIPAddresses: string
    numberOfAllocatedIPAddresses: string
    associatedResources: { resourceId: string; prefixes: string[]; kind: string }[]
  }
  ledger: { active: number; inFlight: number; prefixes: string[] }
  drift: {
    inSync: boolean
    armOnly: { resourceId: string; prefixes: string[]; kind: string }[]
    ledgerOnly: { allocationId: string; vnetResourceId: string; missingPrefixes: string[] }[]
  }
}

describe('GET /v1/pools/{pool}/usage: ARM beside the ledger, and the drift between them', () => {
  let broker: TestBroker
  let drop: () => Promise<void>
  // Tenant B's own deployer, acting in Azure behind the broker's back (with tenant A's auxiliary token).
  let outsider: NetworkManagementClient

  before(async () => {
    // A database of its own: the run's database holds other files' allocations, made in other emulators,
    // which this emulator's pools rightly do not show (they would all be drift here).
    const scratch = await scratchDatabase()
    drop = scratch.drop
    broker = await startTestBroker({ databaseUrl: scratch.url })
    const { emulator } = broker.azure
    outsider = new NetworkManagementClient(
      credential(emulator, DEMO_IDS.tenantB, DEMO_IDS.deployerAppId),
      DEMO_IDS.subscriptionB,
      {
        endpoint: broker.azure.url,
        credentials: { scopes: [ARM_SCOPE] },
        additionalPolicies: [
          {
            policy: auxiliaryAuthenticationHeaderPolicy({
              credentials: [credential(emulator, DEMO_IDS.tenantA, DEMO_IDS.deployerAppId)],
              scopes: ARM_SCOPE,
            }),
            position: 'perRetry',
          },
        ],
      },
    )
  })
  after(async () => {
    await broker.close()
    await drop()
  })

  const usage = async (pool = 'pool-retail') => {
    const { request } = await broker.as('Reader')
    const response = await request.get(`/v1/pools/${pool}/usage`)
    assert.equal(response.status, 200, JSON.stringify(response.body))
    return response.body as UsageBody
  }

  const deploy = async (name: string) => {
    const { request } = await broker.as('Requester')
    const response = await request.post('/v1/vnets?wait=30').send({
      subscriptionId: DEMO_IDS.subscriptionB,
      resourceGroup: RG_B,
      name,
      location: 'westeurope',
      ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
    })
    assert.equal(response.status, 200, JSON.stringify(response.body))
    const body = response.body as { state: string; virtualNetworkId: string; vnetResourceId: string }
    assert.equal(body.state, 'succeeded', JSON.stringify(body))
    return body
  }

  it('lists the registered pools for Readers, and refuses Requesters', async () => {
    const { request } = await broker.as('Reader')
    const response = await request.get('/v1/pools')
    assert.equal(response.status, 200)
    assert.deepEqual((response.body as { value: { name: string }[] }).value.map((p) => p.name).sort(), [
      'pool-logistics',
      'pool-retail',
      'pool-retail-v6',
    ])
    const { request: requester } = await broker.as('Requester')
    assert.equal((await requester.get('/v1/pools/pool-retail/usage')).status, 403)
  })

  it('shows ARM usage beside the ledger, in sync after deployments through the broker', async () => {
    const first = await deploy('vnet-pool-insight-1')
    const report = await usage()
    assert.equal(report.pool.id, POOL_RETAIL)
    assert.deepEqual(report.pool.addressPrefixes.length > 0, true)
    const held = report.arm.associatedResources.find(
      (r) => r.resourceId.toLowerCase() === first.vnetResourceId.toLowerCase(),
    )
    assert.ok(held, JSON.stringify(report.arm.associatedResources))
    assert.equal(held.kind, 'virtualNetwork')
    assert.ok(held.prefixes.every((p) => report.ledger.prefixes.includes(p)))
    assert.equal(report.drift.inSync, true, JSON.stringify(report.drift))
    assert.equal(report.ledger.inFlight, 0)
    // ARM's count of allocated addresses is what the ledger's prefixes add up to.
    assert.equal(BigInt(report.arm.numberOfAllocatedIPAddresses), BigInt(report.ledger.active) * 256n)

    // The same pool by URL-encoded ARM id (any case), and the figure as a metric.
    const { request } = await broker.as('Reader')
    const byId = await request.get(`/v1/pools/${encodeURIComponent(POOL_RETAIL.toUpperCase())}/usage`)
    assert.equal(byId.status, 200, JSON.stringify(byId.body))
    assert.equal((byId.body as UsageBody).pool.id, POOL_RETAIL)
    const metrics = await request.get('/metrics')
    assert.match(
      metrics.text,
      new RegExp(
        `ipam_broker_pool_arm_addresses\\{pool_id="${POOL_RETAIL}",kind="allocated"\\} ${report.arm.numberOfAllocatedIPAddresses}\\n`,
      ),
    )
  })

  it('a VNet deleted directly in Azure shows up as ledger-only drift', async () => {
    const doomed = await deploy('vnet-pool-insight-gone')
    const before = await usage()
    assert.equal(before.drift.inSync, true, JSON.stringify(before.drift))
    const prefixes = before.arm.associatedResources.find(
      (r) => r.resourceId.toLowerCase() === doomed.vnetResourceId.toLowerCase(),
    )!.prefixes

    await outsider.virtualNetworks.beginDeleteAndWait(RG_B, 'vnet-pool-insight-gone')

    const after = await usage()
    assert.equal(after.drift.inSync, false)
    assert.deepEqual(after.drift.armOnly, [])
    assert.equal(after.drift.ledgerOnly.length, 1, JSON.stringify(after.drift))
    const [gone] = after.drift.ledgerOnly
    assert.equal(gone!.vnetResourceId.toLowerCase(), doomed.vnetResourceId.toLowerCase())
    assert.deepEqual(gone!.missingPrefixes, prefixes)
    assert.equal(BigInt(after.arm.numberOfAllocatedIPAddresses), BigInt(before.arm.numberOfAllocatedIPAddresses) - 256n)
  })

  it('a VNet created from the pool outside the broker shows up as ARM-only drift', async () => {
    await outsider.virtualNetworks.beginCreateOrUpdateAndWait(RG_B, 'vnet-shadow-it', {
      location: 'westeurope',
      addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '64', id: POOL_RETAIL }] },
    })
    const report = await usage()
    const shadow = report.drift.armOnly.find((r) =>
      r.resourceId.toLowerCase().endsWith('/virtualnetworks/vnet-shadow-it'),
    )
    assert.ok(shadow, JSON.stringify(report.drift))
    assert.equal(shadow.kind, 'virtualNetwork')
    assert.equal(shadow.prefixes.length, 1)
    assert.match(shadow.prefixes[0]!, /\/26$/)
    // The earlier deletion is still reported; nothing the broker holds is misreported.
    assert.equal(report.drift.ledgerOnly.length, 1)
    assert.equal(report.drift.armOnly.length, 1)
  })

  it('answers unknown pools with 404 and problem details', async () => {
    const { request } = await broker.as('Reader')
    const response = await request.get('/v1/pools/pool-nowhere/usage')
    assert.equal(response.status, 404)
    assert.equal((response.body as { code: string }).code, 'pool-not-found')
  })
})
