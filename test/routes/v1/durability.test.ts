import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { type DemoAzure, DEMO_IDS, startDemoAzure } from '../../../emulator/demo-broker.ts'
import { createPrismaClient, type PrismaClient } from '../../../src/db/client.ts'
import { testDatabaseUrl } from '../../helpers/database.ts'
import { cleanEnv, freePort, type RunningServer, spawnServer, waitFor } from '../../helpers/process.ts'

// Acceptance: a broker killed with SIGKILL in the middle of a deployment, and started again (or a
// second broker on the same database), finishes the operation: one VNet, one allocation, a ledger
// that says so once.

const POOL_RETAIL = `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`

interface Broker {
  server: RunningServer
  url: string
}

describe('durable execution across broker processes', () => {
  let azure: DemoAzure
  let prisma: PrismaClient
  const queueSchema = `pgboss_durability_${randomBytes(4).toString('hex')}`
  const running: Broker[] = []

  const startBroker = async (): Promise<Broker> => {
    const port = await freePort()
    const brokerSecret = azure.emulator.state.applications.get(DEMO_IDS.brokerAppId)!.passwords[0]!.secretText
    const server = spawnServer(
      'node',
      cleanEnv({
        DATABASE_URL: testDatabaseUrl(),
        HOST: '127.0.0.1',
        PORT: String(port),
        AZURE_CLOUD: 'AzurePublicCloud',
        AZURE_AUTHORITY_HOST: azure.url,
        AZURE_RESOURCE_MANAGER_URL: azure.url,
        AZURE_CA_FILE: azure.caFile,
        BROKER_IDENTITY: 'client-secret',
        AZURE_TENANT_ID: DEMO_IDS.tenantA,
        AZURE_CLIENT_ID: DEMO_IDS.brokerAppId,
        AZURE_CLIENT_SECRET: brokerSecret,
        AUTH_TENANT_ID: DEMO_IDS.tenantA,
        AUTH_AUDIENCE: DEMO_IDS.brokerAppId,
        JOB_QUEUE_SCHEMA: queueSchema,
      }),
    )
    const url = `http://127.0.0.1:${port}`
    await waitFor(
      'the broker to listen',
      () => (server.lines.some((l) => String(l['msg']).includes('is listening')) ? true : undefined),
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${server.output()}`)
    })
    const broker = { server, url }
    running.push(broker)
    return broker
  }

  const call = async (
    broker: Broker,
    method: string,
    path: string,
    body?: unknown,
    role: 'Requester' | 'Admin' = 'Requester',
  ) => {
    const response = await fetch(`${broker.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await azure.token(role)}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }

  const kill = async (broker: Broker) => {
    broker.server.child.kill('SIGKILL')
    await broker.server.exited
    running.splice(running.indexOf(broker), 1)
  }

  const ranBy = (broker: Broker, operationId: string) =>
    broker.server.lines.some((l) => l['operationId'] === operationId && l['msg'] === 'operation running')

  const deploy = (broker: Broker, name: string) =>
    call(broker, 'POST', '/v1/vnets', {
      subscriptionId: DEMO_IDS.subscriptionB,
      resourceGroup: 'rg-retail-network',
      name,
      location: 'westeurope',
      ipamAllocations: [{ poolId: POOL_RETAIL, numberOfIpAddresses: '64' }],
    })

  /** One VNet in ARM, one PUT or more, one active allocation with ARM's prefixes, and `allocated` once. */
  const assertConsistent = async (operationId: string, name: string) => {
    const vnet = azure.emulator.state.network.vnets.get(
      `/subscriptions/${DEMO_IDS.subscriptionB}/resourcegroups/rg-retail-network/providers/microsoft.network/virtualnetworks/${name}`,
    )
    assert.ok(vnet, `${name} exists in the emulator`)
    const armPrefixes = vnet.allocations.flatMap((a) => a.prefixes).length
    assert.equal(armPrefixes > 0, true)
    const allocations = await prisma.allocation.findMany({
      where: { operationId },
      include: { prefixes: true, events: true },
    })
    assert.equal(allocations.length, 1)
    assert.equal(allocations[0]!.state, 'active')
    assert.equal(allocations[0]!.events.filter((e) => e.type === 'allocated').length, 1)
    assert.equal(allocations[0]!.events.filter((e) => e.type === 'deploying').length, 1)
    const pool = azure.emulator.state.network.pools.get(POOL_RETAIL.toLowerCase())!
    assert.equal(pool.associations.has(vnet.id.toLowerCase()), true)
  }

  before(async () => {
    azure = await startDemoAzure()
    prisma = createPrismaClient({ connectionString: testDatabaseUrl(), poolMax: 2 })
    // Deployments take a while, so that a process can be killed in the middle of one.
    azure.emulator.state.lroDurationMs = 5000
  })
  after(async () => {
    for (const broker of [...running]) await kill(broker)
    await prisma.$disconnect()
    await azure.close()
  })

  it('a broker killed during a deployment and started again resumes polling and finishes it', async () => {
    const first = await startBroker()
    // The broker is another process: its API over HTTP, in the shape register() injects with.
    await azure.register({
      inject: async ({ method, url, payload }) => {
        const response = await call(first, method, url, payload, 'Admin')
        return { statusCode: response.status, json: () => response.body }
      },
    })
    const submitted = await deploy(first, 'vnet-killed-1')
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body))
    const operationId = submitted.body['id'] as string
    // The PUT has been accepted by ARM and the poller's state saved: now the process dies.
    await waitFor('the poller state to be saved', async () =>
      (await prisma.operation.findUnique({ where: { id: operationId } }))?.pollerState ? true : undefined,
    )
    await kill(first)
    const puts = () =>
      azure.emulator.requestLog.entries.filter(
        (e) => e.method === 'PUT' && e.path.toLowerCase().endsWith('/virtualnetworks/vnet-killed-1'),
      ).length
    assert.equal(puts(), 1)

    const second = await startBroker()
    const done = await call(second, 'GET', `/v1/operations/${operationId}?wait=60`)
    assert.equal(done.body['state'], 'succeeded', JSON.stringify(done.body))
    assert.ok((done.body['attempts'] as number) >= 2)
    assert.equal(puts(), 1, 'the restarted broker resumed polling instead of deploying again')
    assert.ok(ranBy(second, operationId))
    await assertConsistent(operationId, 'vnet-killed-1')
    await kill(second)
  })

  it('two brokers on one database: when the one running a deployment dies, the other finishes it', async () => {
    const [a, b] = [await startBroker(), await startBroker()]
    const names = Array.from({ length: 6 }, (_, i) => `vnet-pair-${i}`)
    const operations: string[] = []
    for (const name of names) {
      const submitted = await deploy(a, name)
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body))
      operations.push(submitted.body['id'] as string)
    }
    const target = operations[0]!
    const holder = await waitFor('a broker to run the first operation', () =>
      ranBy(a, target) ? a : ranBy(b, target) ? b : undefined,
    )
    const survivor = holder === a ? b : a
    await waitFor('its poller state', async () =>
      (await prisma.operation.findUnique({ where: { id: target } }))?.pollerState ? true : undefined,
    )
    await kill(holder)
    for (const [i, operationId] of operations.entries()) {
      const done = await call(survivor, 'GET', `/v1/operations/${operationId}?wait=60`)
      assert.equal(done.body['state'], 'succeeded', JSON.stringify(done.body))
      await assertConsistent(operationId, names[i]!)
    }
    assert.ok(ranBy(survivor, target), 'the survivor took over the operation')
    const prefixes = await prisma.allocationPrefix.findMany({
      where: { allocation: { operationId: { in: operations } } },
    })
    assert.equal(new Set(prefixes.map((p) => p.prefix)).size, operations.length, 'six allocations, none twice')
  })
})
