import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEMO_CALLERS, DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'

const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`

interface AuditRow {
  action: string
  decision: string | null
  reason: string | null
  actorOid: string | null
  target: string | null
  grantId: string | null
  operationId: string | null
  detail: Record<string, unknown> | null
}

describe('grants, read scoping and the audit trail', () => {
  let broker: TestBroker
  before(async () => {
    broker = await startTestBroker()
  })
  after(async () => broker.close())

  const body = (name: string, numberOfIpAddresses = '64') => ({
    subscriptionId: DEMO_IDS.subscriptionB,
    resourceGroup: 'rg-retail-network',
    name,
    location: 'westeurope',
    ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses }],
  })
  const armWritesFor = (name: string) =>
    broker.azure.emulator.requestLog.entries.filter(
      (e) => e.method !== 'GET' && e.path.toLowerCase().includes(`/virtualnetworks/${name}`),
    )
  const audit = async (query: string) => {
    const { request } = await broker.as('Reader')
    const { body: list } = await request.get(`/v1/audit?${query}`).expect(200)
    return (list as { value: AuditRow[] }).value
  }

  it('a Requester asking beyond its grant gets 403 naming the missing grant; nothing reaches ARM; the denial is audited', async () => {
    const { request } = await broker.as('Requester')
    const before = await broker.prisma.operation.count()
    const denied = await request.post('/v1/vnets').send(body('vnet-too-big', '131072'))
    assert.equal(denied.status, 403, JSON.stringify(denied.body))
    assert.equal(denied.body.code, 'grant-required')
    assert.deepEqual(denied.body.missingGrant, {
      subscriptionId: DEMO_IDS.subscriptionB,
      poolId: POOL_RETAIL,
      numberOfIpAddresses: '131072',
    })
    assert.match(denied.body.detail as string, /pool-retail, at least 131072 addresses/)
    assert.equal(await broker.prisma.operation.count(), before)
    assert.deepEqual(armWritesFor('vnet-too-big'), [])

    const [entry] = await audit('action=vnet.deploy&limit=1')
    assert.equal(entry?.decision, 'denied')
    assert.match(entry?.reason ?? '', /missing a grant for subscription .* at least 131072 addresses/)
    assert.equal(entry?.target?.endsWith('/virtualNetworks/vnet-too-big'), true)
  })

  it('an allowed request is audited with the grant it used, and each ARM write with its ids', async () => {
    const { request } = await broker.as('Requester')
    const { body: operation } = await request.post('/v1/vnets?wait=30').send(body('vnet-granted')).expect(200)
    assert.equal(operation.state, 'succeeded', JSON.stringify(operation))
    const [decision] = await audit('action=vnet.deploy&limit=1')
    assert.equal(decision?.decision, 'allowed')
    const { request: admin } = await broker.as('Admin')
    const { body: grants } = await admin.get(`/v1/grants?principalId=${DEMO_CALLERS.Requester}`).expect(200)
    const retail = (grants as { value: { id: string; poolIds: string[] }[] }).value.find((g) =>
      g.poolIds.includes(POOL_RETAIL),
    )
    assert.equal(decision?.grantId, retail?.id)

    const writes = await audit(`action=arm.write&operationId=${operation.id as string}`)
    assert.equal(writes.length, 1)
    assert.equal(writes[0]!.detail?.['method'], 'PUT')
    assert.equal(writes[0]!.detail?.['status'], 201)
    assert.ok(writes[0]!.detail?.['armRequestId'])
    assert.equal(writes[0]!.actorOid, (operation.requester as { oid: string }).oid)
    assert.match(writes[0]!.target ?? '', /\/virtualNetworks\/vnet-granted$/)
  })

  it("revoking a grant denies the next request; a grant on the caller's object id allows it again; admin changes are audited", async () => {
    const { request: admin } = await broker.as('Admin')
    const { request, token } = await broker.as('Requester')
    const oid = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).oid as string
    const { body: grants } = await admin.get(`/v1/grants?principalId=${DEMO_CALLERS.Requester}`).expect(200)
    const retail = (grants as { value: { id: string; poolIds: string[] }[] }).value.find((g) =>
      g.poolIds.includes(POOL_RETAIL),
    )!
    await admin.delete(`/v1/grants/${retail.id}`).expect(200)
    assert.equal((await request.post('/v1/vnets').send(body('vnet-after-revoke'))).status, 403)

    const created = await admin
      .post('/v1/grants')
      .send({
        principalType: 'object',
        principalId: oid,
        subscriptionIds: [DEMO_IDS.subscriptionB],
        poolIds: [POOL_RETAIL],
        maxAddresses: '256',
      })
      .expect(201)
    const allowed = await request.post('/v1/vnets?wait=30').send(body('vnet-after-revoke'))
    assert.equal(allowed.body.state, 'succeeded', JSON.stringify(allowed.body))
    assert.equal((await request.post('/v1/vnets').send(body('vnet-over-object-grant', '512'))).status, 403)

    const changes = await audit('limit=50')
    assert.ok(changes.some((e) => e.action === 'grant.revoke' && e.target === retail.id))
    assert.ok(changes.some((e) => e.action === 'grant.create' && e.target === created.body.id))
    // The demo grant goes back, so later tests in this file see the demo as it was.
    const {
      id: _id,
      createdBy: _b,
      createdAt: _a,
      revokedAt: _r,
      revokedBy: _rb,
      ...input
    } = retail as Record<string, unknown>
    await admin.post('/v1/grants').send(input).expect(201)
  })

  it('a Requester sees only what it asked for; a Reader sees everything', async () => {
    const { request: admin } = await broker.as('Admin')
    const { body: adminOperation } = await admin.post('/v1/vnets?wait=30').send(body('vnet-by-admin')).expect(200)
    const { request: requester } = await broker.as('Requester')
    const { request: reader } = await broker.as('Reader')
    const id = adminOperation.virtualNetworkId as string
    assert.equal((await requester.get(`/v1/vnets/${id}`)).status, 404)
    assert.equal((await requester.get(`/v1/operations/${adminOperation.id as string}`)).status, 404)
    assert.equal((await requester.delete(`/v1/vnets/${id}?mode=delete`)).status, 404)
    const mine = (await requester.get('/v1/vnets?limit=500').expect(200)).body as { value: { id: string }[] }
    assert.ok(!mine.value.some((v) => v.id === id))
    assert.equal((await reader.get(`/v1/vnets/${id}`)).status, 200)
    const all = (await reader.get('/v1/vnets?limit=500').expect(200)).body as { value: { id: string }[] }
    assert.ok(all.value.some((v) => v.id === id))
    // A Reader may look but not ask.
    assert.equal((await reader.post('/v1/vnets').send(body('vnet-by-reader'))).status, 403)
  })

  it('the audit trail is append-only', async () => {
    await assert.rejects(broker.prisma.$executeRaw`UPDATE audit_event SET reason = 'rewritten'`, /append-only/)
    await assert.rejects(broker.prisma.$executeRaw`DELETE FROM audit_event`, /append-only/)
  })
})
