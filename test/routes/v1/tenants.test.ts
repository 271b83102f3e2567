import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import supertest from 'supertest'
import { DEMO_IDS } from '../../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts'
import { credential } from '../../helpers/emulator.ts'

const NM = DEMO_IDS.networkManagerId
const POOL_RETAIL = `${NM}/ipamPools/pool-retail`
const RG_B = 'rg-retail-network'
const RG_C = 'rg-logistics-network'
const TENANT_A_OWNER = 'f4f4f4f4-0000-4000-8000-0000000000f4'
const IPAM_POOL_USER = '7b3e853f-ad5d-4fb5-a7b8-56a3581c7037'
const ARM_SCOPE = 'https://management.azure.com/.default'
const AUTHORIZATION_API = 'api-version=2022-04-01'

interface Problem {
  type: string
  title: string
  status: number
  detail: string
  instance: string
  code: string
  errors?: { in: string; field: string; message: string }[]
  [extension: string]: unknown
}

interface PreflightReport {
  tenantId: string
  subscriptionId: string
  resourceGroup: string
  ok: boolean
  checks: { name: string; status: string; detail: string; code?: string }[]
}

interface Operation {
  id: string
  state: string
  virtualNetworkId: string
  steps: { name: string; state: string; armRequestId: string | null }[]
  error: { code: string; source: string; status: number; advice: string; armRequestId: string | null } | null
}

const DEMO_CHECKS = [
  'secret-readable',
  'primary-token',
  'auxiliary-token',
  'pool-readable pool-retail',
  'associate-allowed pool-retail',
  'pool-readable pool-logistics',
  'associate-allowed pool-logistics',
  'pool-readable pool-retail-v6',
  'associate-allowed pool-retail-v6',
  'vnet-write-allowed',
  'cross-tenant-connection',
]

// The checks one pool's role decides; the others are covered by the demo-topology preflight tests.
const isPoolCheck = (name: string) => /^(pool-readable|associate-allowed) /.test(name)

describe('/v1/tenants: the registry and its preflight', () => {
  let broker: TestBroker
  let admin: supertest.Agent
  /** Every response body the broker sent in this file, to look for the deployer's secret in. */
  const bodies: string[] = []
  // Registrations this file adds beside the demo ones, removed again at the end.
  const managementId = randomUUID()
  const managedId = randomUUID()
  const subscriptions = [randomUUID(), randomUUID()]

  const seen = async <T extends { text: string }>(response: Promise<T> | T) => {
    const settled = await response
    bodies.push(settled.text)
    return settled
  }
  const problemOf = (response: { status: number; headers: Record<string, string>; body: unknown }) => {
    assert.match(response.headers['content-type'] ?? '', /^application\/problem\+json/)
    return response.body as Problem
  }
  const preflight = async (tenantId: string, resourceGroup: string) => {
    const response = await seen(admin.post(`/v1/tenants/managed/${tenantId}/preflight`).send({ resourceGroup }))
    assert.equal(response.status, 200, response.text)
    return response.body as PreflightReport
  }

  // The network admin of tenant A manages role assignments in its subscription through ARM.
  const armAsOwner = async (path: string, init: { method?: string; body?: unknown } = {}) => {
    const { token } = await credential(broker.azure.emulator, DEMO_IDS.tenantA, TENANT_A_OWNER).getToken(ARM_SCOPE)
    const response = await fetch(`${broker.azure.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  const deployerInTenantA = () =>
    broker.azure.emulator.state.servicePrincipal(DEMO_IDS.deployerAppId, DEMO_IDS.tenantA)!.objectId

  before(async () => {
    broker = await startTestBroker()
    admin = (await broker.as('Admin')).request
  })
  after(async () => {
    await broker.prisma.managedSubscription.deleteMany({ where: { subscriptionId: { in: subscriptions } } })
    await broker.prisma.managedTenant.deleteMany({ where: { tenantId: managedId } })
    await broker.prisma.managementTenant.deleteMany({ where: { tenantId: managementId } })
    await broker.close()
  })

  it('registers a management tenant and reads it back', async () => {
    const body = {
      displayName: 'Fabrikam Network Management',
      networkManagerId: NM,
      poolIds: [POOL_RETAIL, `${NM}/ipamPools/pool-logistics`, POOL_RETAIL],
    }
    const put = await seen(admin.put(`/v1/tenants/management/${managementId.toUpperCase()}`).send(body))
    assert.equal(put.status, 200, put.text)
    const created = put.body as Record<string, unknown>
    assert.deepEqual(
      { ...created, createdAt: undefined, updatedAt: undefined },
      {
        tenantId: managementId,
        displayName: 'Fabrikam Network Management',
        networkManagerId: NM,
        poolIds: [POOL_RETAIL, `${NM}/ipamPools/pool-logistics`],
        createdAt: undefined,
        updatedAt: undefined,
      },
    )

    const renamed = await seen(
      admin.put(`/v1/tenants/management/${managementId}`).send({ ...body, displayName: 'Fabrikam NetOps' }),
    )
    assert.equal(renamed.status, 200, renamed.text)
    const get = await seen(admin.get(`/v1/tenants/management/${managementId}`))
    assert.equal(get.status, 200)
    assert.deepEqual(get.body, renamed.body)
    assert.equal((get.body as { displayName: string }).displayName, 'Fabrikam NetOps')
    assert.equal((get.body as { createdAt: string }).createdAt, created['createdAt'])
    assert.ok((get.body as { updatedAt: string }).updatedAt >= (created['createdAt'] as string))
  })

  it('registers a managed tenant by secret reference, and replaces its subscriptions on update', async () => {
    const body = {
      displayName: 'Fabrikam Retail',
      managementTenantId: managementId,
      appId: DEMO_IDS.deployerAppId.toUpperCase(),
      clientSecret: {
        vaultUrl: `${broker.azure.emulator.vaults[DEMO_IDS.vault]!}/`,
        secretName: DEMO_IDS.deployerSecretName,
      },
      subscriptionIds: [subscriptions[1]!.toUpperCase(), subscriptions[0]!],
    }
    const put = await seen(admin.put(`/v1/tenants/managed/${managedId}`).send(body))
    assert.equal(put.status, 200, put.text)
    const { createdAt, updatedAt, ...view } = put.body as Record<string, unknown>
    assert.match(createdAt as string, /^\d{4}-\d\d-\d\dT/)
    assert.match(updatedAt as string, /^\d{4}-\d\d-\d\dT/)
    assert.deepEqual(view, {
      tenantId: managedId,
      displayName: 'Fabrikam Retail',
      managementTenantId: managementId,
      appId: DEMO_IDS.deployerAppId,
      clientSecret: { vaultUrl: broker.azure.emulator.vaults[DEMO_IDS.vault], secretName: DEMO_IDS.deployerSecretName },
      subscriptionIds: [...subscriptions].sort(),
    })

    const narrowed = await seen(
      admin.put(`/v1/tenants/managed/${managedId}`).send({ ...body, subscriptionIds: [subscriptions[0]] }),
    )
    assert.equal(narrowed.status, 200, narrowed.text)
    const get = await seen(admin.get(`/v1/tenants/managed/${managedId}`))
    assert.equal(get.status, 200)
    assert.deepEqual(get.body, narrowed.body)
    assert.deepEqual((get.body as { subscriptionIds: string[] }).subscriptionIds, [subscriptions[0]])
    assert.equal((get.body as { createdAt: string }).createdAt, createdAt)
  })

  it('lists every management and managed tenant', async () => {
    const list = await seen(admin.get('/v1/tenants'))
    assert.equal(list.status, 200)
    const { management, managed } = list.body as {
      management: { tenantId: string }[]
      managed: { tenantId: string; subscriptionIds: string[] }[]
    }
    const management0 = await seen(admin.get(`/v1/tenants/management/${managementId}`))
    const managed0 = await seen(admin.get(`/v1/tenants/managed/${managedId}`))
    assert.deepEqual(
      management.find((t) => t.tenantId === managementId),
      management0.body,
    )
    assert.deepEqual(
      managed.find((t) => t.tenantId === managedId),
      managed0.body,
    )
    assert.ok(management.some((t) => t.tenantId === DEMO_IDS.tenantA))
    assert.deepEqual(managed.find((t) => t.tenantId === DEMO_IDS.tenantB)?.subscriptionIds, [DEMO_IDS.subscriptionB])
    assert.deepEqual(managed.find((t) => t.tenantId === DEMO_IDS.tenantC)?.subscriptionIds, [DEMO_IDS.subscriptionC])
  })

  it('refuses invalid input with 400 problem details naming the field', async () => {
    const badGuid = await seen(admin.get('/v1/tenants/managed/not-a-guid'))
    assert.equal(badGuid.status, 400)
    const guidProblem = problemOf(badGuid)
    assert.equal(guidProblem.code, 'validation-failed')
    assert.equal(guidProblem.instance, '/v1/tenants/managed/not-a-guid')
    assert.deepEqual(
      guidProblem.errors?.map((e) => [e.in, e.field]),
      [['params', '/tenantId']],
    )

    const managed = {
      displayName: 'Fabrikam Retail',
      managementTenantId: DEMO_IDS.tenantA,
      appId: DEMO_IDS.deployerAppId,
      clientSecret: { vaultUrl: 'http://kv-ipam-broker.vault.azure.net', secretName: DEMO_IDS.deployerSecretName },
      subscriptionIds: [randomUUID()],
    }
    const http = await seen(admin.put(`/v1/tenants/managed/${randomUUID()}`).send(managed))
    assert.equal(http.status, 400)
    assert.deepEqual(
      problemOf(http).errors?.map((e) => [e.in, e.field]),
      [['body', '/clientSecret/vaultUrl']],
    )

    // A secret value has no place in the registry: an unknown property is refused, not dropped.
    const extra = await seen(
      admin.put(`/v1/tenants/managed/${randomUUID()}`).send({
        ...managed,
        clientSecret: { ...managed.clientSecret, vaultUrl: 'https://kv-ipam-broker.vault.azure.net' },
        clientSecretValue: 'not-a-real-secret',
      }),
    )
    assert.equal(extra.status, 400)
    const extraProblem = problemOf(extra)
    assert.equal(extraProblem.code, 'validation-failed')
    assert.deepEqual(
      extraProblem.errors?.map((e) => [e.in, e.field]),
      [['body', '/clientSecretValue']],
    )
    assert.ok(!extra.text.includes('not-a-real-secret'))
  })

  it('refuses a pool outside the network manager with 422', async () => {
    const stray =
      '/subscriptions/a1a1a1a1-0000-4000-8000-0000000000a1/resourceGroups/rg-network-management/providers/Microsoft.Network/networkManagers/nm-other/ipamPools/pool-retail'
    const response = await seen(
      admin
        .put(`/v1/tenants/management/${randomUUID()}`)
        .send({ displayName: 'Stray', networkManagerId: NM, poolIds: [POOL_RETAIL, stray] }),
    )
    assert.equal(response.status, 422)
    const problem = problemOf(response)
    assert.equal(problem.code, 'pool-outside-network-manager')
    assert.equal(problem.detail, `Pool ${stray} is not an IPAM pool of network manager ${NM}.`)
  })

  it('refuses a managed tenant whose management tenant is not registered with 422', async () => {
    const unregistered = randomUUID()
    const tenantId = randomUUID()
    const response = await seen(
      admin.put(`/v1/tenants/managed/${tenantId}`).send({
        displayName: 'Orphan',
        managementTenantId: unregistered,
        appId: DEMO_IDS.deployerAppId,
        clientSecret: { vaultUrl: 'https://kv-ipam-broker.vault.azure.net', secretName: DEMO_IDS.deployerSecretName },
        subscriptionIds: [randomUUID()],
      }),
    )
    assert.equal(response.status, 422)
    const problem = problemOf(response)
    assert.equal(problem.code, 'management-tenant-not-registered')
    assert.match(problem.detail, new RegExp(`PUT /v1/tenants/management/${unregistered}`))
    assert.equal((await seen(admin.get(`/v1/tenants/managed/${tenantId}`))).status, 404)
  })

  it('refuses a subscription registered under another managed tenant with 409, changing nothing', async () => {
    const response = await seen(
      admin.put(`/v1/tenants/managed/${managedId}`).send({
        displayName: 'Fabrikam Retail',
        managementTenantId: managementId,
        appId: DEMO_IDS.deployerAppId,
        clientSecret: { vaultUrl: 'https://kv-ipam-broker.vault.azure.net', secretName: DEMO_IDS.deployerSecretName },
        subscriptionIds: [subscriptions[0], DEMO_IDS.subscriptionB.toUpperCase()],
      }),
    )
    assert.equal(response.status, 409)
    const problem = problemOf(response)
    assert.equal(problem.code, 'subscription-registered-elsewhere')
    assert.equal(
      problem.detail,
      `Subscription ${DEMO_IDS.subscriptionB} is registered under managed tenant ${DEMO_IDS.tenantB}.`,
    )
    const unchanged = await seen(admin.get(`/v1/tenants/managed/${managedId}`))
    assert.deepEqual((unchanged.body as { subscriptionIds: string[] }).subscriptionIds, [subscriptions[0]])
    assert.equal((unchanged.body as { displayName: string }).displayName, 'Fabrikam Retail')
    const owner = await seen(admin.get(`/v1/tenants/managed/${DEMO_IDS.tenantB}`))
    assert.deepEqual((owner.body as { subscriptionIds: string[] }).subscriptionIds, [DEMO_IDS.subscriptionB])
  })

  it('answers 404 for a tenant that is not registered', async () => {
    const unknown = randomUUID()
    const management = await seen(admin.get(`/v1/tenants/management/${unknown}`))
    assert.equal(management.status, 404)
    assert.equal(problemOf(management).code, 'management-tenant-not-found')
    const preflight = await seen(admin.post(`/v1/tenants/managed/${unknown}/preflight`).send({ resourceGroup: RG_B }))
    assert.equal(preflight.status, 404)
    assert.equal(problemOf(preflight).code, 'managed-tenant-not-found')
  })

  it('lets only admins in: 403 role-required for a Requester or Reader, 401 missing-token without a token', async () => {
    const { request: requester } = await broker.as('Requester')
    const { request: reader } = await broker.as('Reader')
    const anonymous = supertest(broker.app.server)
    const routes = [
      { method: 'get', path: '/v1/tenants' },
      { method: 'get', path: `/v1/tenants/management/${DEMO_IDS.tenantA}` },
      {
        method: 'put',
        path: `/v1/tenants/management/${DEMO_IDS.tenantA}`,
        body: broker.azure.registrations.management.body,
      },
      { method: 'get', path: `/v1/tenants/managed/${DEMO_IDS.tenantB}` },
      {
        method: 'put',
        path: `/v1/tenants/managed/${DEMO_IDS.tenantB}`,
        body: broker.azure.registrations.managed[0]!.body,
      },
      { method: 'post', path: `/v1/tenants/managed/${DEMO_IDS.tenantB}/preflight`, body: { resourceGroup: RG_B } },
    ] as const
    for (const route of routes) {
      const send = (agent: supertest.Agent | ReturnType<typeof supertest>) => {
        const pending = agent[route.method](route.path)
        return seen('body' in route ? pending.send(route.body) : pending)
      }
      for (const [caller, carries] of [
        [requester, 'Requester'],
        [reader, 'Reader'],
      ] as const) {
        const forbidden = await send(caller)
        assert.equal(forbidden.status, 403, `${carries}: ${route.method} ${route.path}`)
        const problem = problemOf(forbidden)
        assert.equal(problem.code, 'role-required')
        assert.deepEqual(problem['requiredRoles'], ['Admin'])
        assert.match(problem.detail, new RegExp(`the token carries ${carries}\\.$`))
      }
      const unauthenticated = await send(anonymous)
      assert.equal(unauthenticated.status, 401, `${route.method} ${route.path}`)
      const problem = problemOf(unauthenticated)
      assert.equal(problem.code, 'unauthenticated')
      assert.equal(problem['reason'], 'missing-token')
    }
  })

  it('preflight: every check passes on the demo topology', async () => {
    const report = await preflight(DEMO_IDS.tenantB, RG_B)
    assert.equal(report.tenantId, DEMO_IDS.tenantB)
    assert.equal(report.subscriptionId, DEMO_IDS.subscriptionB)
    assert.equal(report.resourceGroup, RG_B)
    assert.deepEqual(
      report.checks.map((c) => c.name),
      DEMO_CHECKS,
    )
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'pass'),
      [],
    )
    assert.equal(report.ok, true)
    assert.equal(
      report.checks.find((c) => c.name === 'pool-readable pool-retail')?.detail,
      'Pool pool-retail (10.16.0.0/16) is readable.',
    )
    assert.equal(
      report.checks.find((c) => c.name === 'cross-tenant-connection')?.detail,
      `Subscription ${DEMO_IDS.subscriptionB} is connected to ${NM}.`,
    )
  })

  it('preflight: a connection only offered by the management tenant fails the cross-tenant check', async () => {
    // The seed has tenant A's scope connection for subscription C, but no connection from C back to nm-contoso.
    const report = await preflight(DEMO_IDS.tenantC, RG_C)
    assert.equal(report.subscriptionId, DEMO_IDS.subscriptionC)
    assert.equal(report.ok, false)
    assert.deepEqual(
      report.checks.map((c) => c.name),
      DEMO_CHECKS,
    )
    const failed = report.checks.filter((c) => c.status !== 'pass')
    assert.deepEqual(
      failed.map((c) => [c.name, c.status, c.code]),
      [['cross-tenant-connection', 'fail', 'connection-missing']],
    )
    assert.match(
      failed[0]!.detail,
      new RegExp(`^Subscription ${DEMO_IDS.subscriptionC} has no network manager connection to ${NM}`),
    )
  })

  it('without IPAM Pool User on the pool, preflight says so and a deployment fails with advice, allocating nothing', async () => {
    // Tenant A's network admin removes the deployer's role on pool-retail through ARM.
    const listed = await armAsOwner(
      `${POOL_RETAIL}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${deployerInTenantA()}'&${AUTHORIZATION_API}`,
    )
    const assignments = (
      listed.body['value'] as { id: string; properties: { roleDefinitionId: string; scope: string } }[]
    ).filter((a) => a.properties.roleDefinitionId.endsWith(`/${IPAM_POOL_USER}`))
    assert.deepEqual(
      assignments.map((a) => a.properties.scope),
      [POOL_RETAIL],
    )
    assert.equal((await armAsOwner(`${assignments[0]!.id}?${AUTHORIZATION_API}`, { method: 'DELETE' })).status, 200)

    const report = await preflight(DEMO_IDS.tenantB, RG_B)
    assert.equal(report.ok, false)
    const failed = report.checks.filter((c) => isPoolCheck(c.name) && c.status !== 'pass')
    assert.deepEqual(
      failed.map((c) => [c.name, c.status, c.code]),
      [
        ['pool-readable pool-retail', 'fail', 'AuthorizationFailed'],
        ['associate-allowed pool-retail', 'fail', 'missing-role'],
      ],
    )
    assert.match(failed[0]!.detail, /'IPAM Pool User'/)
    assert.equal(
      failed[1]!.detail,
      `Missing role: app ${DEMO_IDS.deployerAppId} has no 'IPAM Pool User' (Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action) on pool ${POOL_RETAIL} in management tenant ${DEMO_IDS.tenantA}.`,
    )

    const { request } = await broker.as('Requester')
    const response = await seen(
      request.post('/v1/vnets?wait=30').send({
        subscriptionId: DEMO_IDS.subscriptionB,
        resourceGroup: RG_B,
        name: 'vnet-tenants-no-role',
        location: 'westeurope',
        ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
        subnets: [{ name: 'app', numberOfIpAddresses: '64' }],
      }),
    )
    assert.equal(response.status, 200, response.text)
    const operation = response.body as Operation
    assert.equal(operation.state, 'failed', response.text)
    assert.equal(operation.error?.code, 'LinkedAuthorizationFailed')
    assert.equal(operation.error.source, 'arm')
    assert.equal(operation.error.status, 403)
    assert.match(operation.error.advice, /'IPAM Pool User' role on the pool/)
    assert.match(operation.error.advice, new RegExp(`app ${DEMO_IDS.deployerAppId}`))
    assert.match(operation.error.armRequestId ?? '', /^[0-9a-f-]{36}$/)
    assert.deepEqual(
      operation.steps.map((s) => [s.name, s.state, s.armRequestId]),
      [['deploy-vnet', 'failed', operation.error.armRequestId]],
    )

    // The ledger holds the attempt, and no address.
    const allocations = await broker.prisma.allocation.findMany({
      where: { operationId: operation.id },
      include: { prefixes: true },
    })
    assert.deepEqual(
      allocations.map((a) => [a.poolId, a.state, a.prefixes.length]),
      [[POOL_RETAIL, 'failed', 0]],
    )
    assert.equal(await broker.prisma.allocationPrefix.count({ where: { allocationId: allocations[0]!.id } }), 0)
    const events = await broker.prisma.allocationEvent.findMany({
      where: { operationId: operation.id },
      orderBy: { id: 'asc' },
    })
    assert.deepEqual(
      events.map((e) => e.type),
      ['requested', 'deploying', 'failed'],
    )
    assert.deepEqual(events[2]!.prefixes, [])

    const record = await seen(request.get(`/v1/vnets/${operation.virtualNetworkId}`))
    assert.equal(record.status, 200, record.text)
    assert.equal((record.body as { state: string }).state, 'failed')
    assert.deepEqual((record.body as { live: unknown }).live, { exists: false })

    // Tenant B has no such VNet.
    const vnets = new NetworkManagementClient(
      credential(broker.azure.emulator, DEMO_IDS.tenantB, DEMO_IDS.deployerAppId),
      DEMO_IDS.subscriptionB,
      { endpoint: broker.azure.url, credentials: { scopes: [ARM_SCOPE] } },
    )
    await assert.rejects(vnets.virtualNetworks.get(RG_B, 'vnet-tenants-no-role'), { statusCode: 404 })
  })

  it('once the role is assigned again, the pool checks pass and the same request succeeds', async () => {
    const assigned = await armAsOwner(
      `${POOL_RETAIL}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?${AUTHORIZATION_API}`,
      {
        method: 'PUT',
        body: {
          properties: {
            roleDefinitionId: `/subscriptions/${DEMO_IDS.subscriptionA}/providers/Microsoft.Authorization/roleDefinitions/${IPAM_POOL_USER}`,
            principalId: deployerInTenantA(),
            principalType: 'ServicePrincipal',
          },
        },
      },
    )
    assert.equal(assigned.status, 201, JSON.stringify(assigned.body))
    const report = await preflight(DEMO_IDS.tenantB, RG_B)
    assert.deepEqual(
      report.checks.filter((c) => isPoolCheck(c.name)).map((c) => [c.name, c.status]),
      DEMO_CHECKS.filter(isPoolCheck).map((name) => [name, 'pass']),
    )

    const { request } = await broker.as('Requester')
    const response = await seen(
      request.post('/v1/vnets?wait=30').send({
        subscriptionId: DEMO_IDS.subscriptionB,
        resourceGroup: RG_B,
        name: 'vnet-tenants-no-role',
        location: 'westeurope',
        ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '256' }],
      }),
    )
    assert.equal(response.status, 200, response.text)
    assert.equal((response.body as Operation).state, 'succeeded', response.text)
  })

  it('never shows the deployer secret: not in any response, not in the logs', () => {
    const vault = broker.azure.emulator.state.vaults.get(DEMO_IDS.vault)
    const versions = vault?.secrets.get(DEMO_IDS.deployerSecretName) ?? []
    assert.ok(versions.length > 0)
    // The broker did read it (every preflight and deployment above needed it).
    assert.ok(
      (broker.azure.emulator.state.counters.secretReads.get(`${DEMO_IDS.vault}/${DEMO_IDS.deployerSecretName}`) ?? 0) >
        0,
    )
    assert.ok(bodies.length > 30)
    const logs = JSON.stringify(broker.logs)
    for (const { value } of versions) {
      assert.ok(value.length >= 20)
      assert.ok(!bodies.some((body) => body.includes(value)), 'a response body holds the secret')
      assert.ok(!logs.includes(value), 'the logs hold the secret')
    }
  })
})
