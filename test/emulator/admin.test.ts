import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import type { Emulator } from '../../emulator/index.ts'
import type { RequestLogEntry } from '../../emulator/common/pipeline.ts'
import { credential, DEMO, startTestEmulator } from '../helpers/emulator.ts'

const ARM_SCOPE = 'https://management.azure.com/.default'
const GROUP_B = `/subscriptions/${DEMO.subscriptionB}/resourceGroups/${DEMO.resourceGroupB}`

describe('emulator: admin API and fault injection', () => {
  let emulator: Emulator
  let deployer: NetworkManagementClient

  interface AdminResponse {
    status: number
    headers: Headers
    // Untyped JSON, as supertest's res.body elsewhere: the assertions are the type check.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    body: any
  }

  async function api(method: string, path: string, body?: unknown): Promise<AdminResponse> {
    const response = await fetch(`${emulator.url}/_emulator${path}`, {
      method,
      ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined }
  }

  async function addFault(rule: object): Promise<string> {
    const res = await api('POST', '/faults', rule)
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return res.body.id as string
  }

  const requests = async (service?: string): Promise<RequestLogEntry[]> =>
    (await api('GET', `/requests${service ? `?service=${service}` : ''}`)).body.value as RequestLogEntry[]

  // Short retry delays keep the retry tests fast; the policies are the SDK's own.
  const networkClient = () =>
    new NetworkManagementClient(credential(emulator, DEMO.tenantB, DEMO.deployerAppId), DEMO.subscriptionB, {
      endpoint: emulator.url,
      credentials: { scopes: [ARM_SCOPE] },
      retryOptions: { retryDelayInMs: 20, maxRetryDelayInMs: 200 },
    })

  const staticVnet = (name: string, prefix: string) =>
    deployer.virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, name, {
      location: 'westeurope',
      addressSpace: { addressPrefixes: [prefix] },
    })

  before(async () => {
    emulator = await startTestEmulator()
    assert.deepEqual((await api('PUT', '/settings', { lroDurationMs: 0 })).body, { lroDurationMs: 0, clockOffsetMs: 0 })
    deployer = networkClient()
    await staticVnet('vnet-admin-base', '172.16.0.0/24')
  })
  after(async () => emulator.close())
  beforeEach(async () => {
    assert.equal((await api('DELETE', '/faults')).status, 204)
    assert.equal((await api('DELETE', '/requests')).status, 204)
  })

  it('answers health, and validates fault rules with clear 400s', async () => {
    assert.deepEqual((await api('GET', '/health')).body, { status: 'ok' })
    const bad = [
      [{ action: { kind: 'status', status: 404 } }, /action.status must be 429, 500 or 503/],
      [{ action: { kind: 'explode' } }, /action.kind must be/],
      [{ match: { pathPattern: '(' }, action: { kind: 'drop' } }, /not a valid RegExp/],
      [{ match: { service: 'nope' }, action: { kind: 'drop' } }, /match.service must be one of/],
      [{ action: { kind: 'latency', ms: -1 } }, /action.ms must be/],
      [{ action: { kind: 'drop' }, remaining: 0 }, /remaining must be/],
      [{ match: { method: 'GET' }, action: { kind: 'lro-fail', code: 'X', message: 'y' } }, /PUT and DELETE only/],
      [{ action: { kind: 'drop' }, extra: true }, /unknown field/],
      ['not an object', /must be a JSON object/],
    ] as const
    for (const [rule, message] of bad) {
      const res = await api('POST', '/faults', rule)
      assert.equal(res.status, 400, JSON.stringify(rule))
      assert.equal(res.body.error.code, 'InvalidFaultRule')
      assert.match(res.body.error.message, message)
    }
    const res = await api('PUT', '/settings', { lroDurationMs: 'soon' })
    assert.equal(res.status, 400)
    assert.match(res.body.error.message, /lroDurationMs/)
    assert.equal((await api('GET', '/requests?service=nope')).status, 400)
  })

  it('lists and deletes rules; admin requests are never faulted nor logged', async () => {
    const everything = await addFault({ match: { pathPattern: '.*' }, action: { kind: 'status', status: 500 } })
    const other = await addFault({ match: { service: 'graph' }, action: { kind: 'drop' }, remaining: 3 })
    assert.equal((await api('GET', '/health')).status, 200)
    const listed = (await api('GET', '/faults')).body.value
    assert.deepEqual(
      listed.map((rule: { id: string; remaining: number }) => [rule.id, rule.remaining]),
      [
        [everything, 1],
        [other, 3],
      ],
    )
    assert.equal((await api('DELETE', `/faults/${everything}`)).status, 204)
    assert.equal((await api('DELETE', `/faults/${everything}`)).status, 404)
    assert.deepEqual(
      (await api('GET', '/faults')).body.value.map((rule: { id: string }) => rule.id),
      [other],
    )
    assert.deepEqual(await requests(), [])
  })

  it('injects Azure-shaped errors: ARM/Key Vault envelope, Entra OAuth error, Retry-After', async () => {
    await addFault({ match: { service: 'keyvault' }, action: { kind: 'status', status: 503, retryAfterSeconds: 7 } })
    const vault = await fetch(`${emulator.vaults[DEMO.vault]}/secrets/x?api-version=7.5`)
    assert.equal(vault.status, 503)
    assert.equal(vault.headers.get('retry-after'), '7')
    assert.ok(vault.headers.get('x-ms-request-id'))
    const vaultBody = (await vault.json()) as { error: { code: string; message: string } }
    assert.equal(vaultBody.error.code, 'ServiceUnavailable')
    assert.match(vaultBody.error.message, /injected by the emulator/)

    await addFault({ match: { service: 'login', method: 'POST' }, action: { kind: 'status', status: 503 } })
    const login = await fetch(`${emulator.url}/${DEMO.tenantA}/oauth2/v2.0/token`, { method: 'POST' })
    assert.equal(login.status, 503)
    assert.equal(login.headers.get('retry-after'), null)
    const loginBody = (await login.json()) as { error: string; error_codes: number[] }
    assert.equal(loginBody.error, 'temporarily_unavailable')
    assert.equal(loginBody.error_codes.length, 1)
    assert.deepEqual(
      (await requests()).map((entry) => [entry.service, entry.status]),
      [
        ['keyvault', 503],
        ['login', 503],
      ],
    )
  })

  it('a 429 with Retry-After: 1 on the token request is retried by @azure/identity, and logged', async () => {
    await addFault({
      match: { service: 'login', method: 'POST', pathPattern: '/oauth2/v2\\.0/token$' },
      action: { kind: 'status', status: 429, retryAfterSeconds: 1 },
    })
    const started = Date.now()
    const token = await credential(emulator, DEMO.tenantB, DEMO.deployerAppId).getToken(ARM_SCOPE)
    assert.ok(token.token)
    assert.ok(Date.now() - started >= 900, 'the retry waited for Retry-After')
    const tokenCalls = (await requests('login')).filter((entry) => entry.path.endsWith('/oauth2/v2.0/token'))
    assert.deepEqual(
      tokenCalls.map((entry) => entry.status),
      [429, 200],
    )
    assert.deepEqual((await api('GET', '/faults')).body.value, [])
  })

  it('the next 2 ARM GETs on a resource group answer 503; the SDK retries and succeeds', async () => {
    await addFault({
      match: { service: 'arm', method: 'GET', pathPattern: `^${GROUP_B}/` },
      action: { kind: 'status', status: 503 },
      remaining: 2,
    })
    const vnet = await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-admin-base')
    assert.equal(vnet.name, 'vnet-admin-base')
    const gets = (await requests('arm')).filter((entry) => entry.method === 'GET')
    assert.deepEqual(
      gets.map((entry) => entry.status),
      [503, 503, 200],
    )
  })

  it('a dropped connection is retried by the SDK, and logged with status 0', async () => {
    await addFault({ match: { service: 'arm', method: 'GET' }, action: { kind: 'drop' } })
    const vnet = await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-admin-base')
    assert.equal(vnet.name, 'vnet-admin-base')
    assert.deepEqual(
      (await requests('arm')).map((entry) => entry.status),
      [0, 200],
    )
    // The emulator is unharmed: plain requests still work.
    assert.equal((await api('GET', '/health')).status, 200)
  })

  it('latency injection delays a request by at least the configured time', async () => {
    await addFault({
      match: { service: 'arm', pathPattern: '/virtualNetworks/vnet-admin-base$' },
      action: { kind: 'latency', ms: 400 },
    })
    const started = Date.now()
    await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-admin-base')
    assert.ok(Date.now() - started >= 400)
    const quick = Date.now()
    await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-admin-base')
    assert.ok(Date.now() - quick < 400, 'only the next request is slowed')
  })

  it('an lro-fail rule makes beginCreateOrUpdateAndWait reject with the injected code', async () => {
    await addFault({
      match: { pathPattern: '/virtualNetworks/vnet-doomed$' },
      action: { kind: 'lro-fail', code: 'InjectedFailure', message: 'An injected provisioning failure.' },
    })
    // GETs do not take an lro-fail rule: it waits for the PUT.
    await assert.rejects(deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-doomed'), { statusCode: 404 })
    // core-lro rejects a Failed operation with a plain Error: "...has failed. <code>. <message>".
    await assert.rejects(staticVnet('vnet-doomed', '172.16.1.0/24'), {
      message: /long-running operation has failed\. InjectedFailure\. An injected provisioning failure/,
    })
    const poll = (await requests('arm')).find((entry) => /\/operations\//.test(entry.path))
    assert.equal(poll?.status, 200)
    assert.deepEqual((await api('GET', '/faults')).body.value, [])
    // The rule was used up: the next deployment succeeds.
    assert.equal((await staticVnet('vnet-doomed', '172.16.1.0/24')).provisioningState, 'Succeeded')

    await addFault({
      match: { service: 'arm', method: 'DELETE' },
      action: { kind: 'lro-fail', code: 'InjectedDeleteFailure', message: 'Delete failed on purpose.' },
    })
    await assert.rejects(deployer.virtualNetworks.beginDeleteAndWait(DEMO.resourceGroupB, 'vnet-doomed'), {
      message: /InjectedDeleteFailure\. Delete failed on purpose/,
    })
  })

  it('counts token requests; the request log holds no token', async () => {
    await credential(emulator, DEMO.tenantA, DEMO.adminAppId).getToken(ARM_SCOPE)
    await deployer.virtualNetworks.get(DEMO.resourceGroupB, 'vnet-admin-base')
    const counters = (await api('GET', '/counters')).body
    assert.ok(counters.tokenRequests[`${DEMO.tenantA}/${DEMO.adminAppId}`] >= 1)
    assert.ok(counters.tokenRequests[`${DEMO.tenantB}/${DEMO.deployerAppId}`] >= 1)
    assert.equal(typeof counters.secretReads, 'object')
    const log = await requests()
    assert.ok(log.some((entry) => entry.service === 'arm' && entry.authorization))
    for (const entry of log) assert.ok(!JSON.stringify(entry).includes('eyJ'), JSON.stringify(entry))
  })
})
