import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Emulator } from '../../emulator/index.ts'
import { type ArmCaller } from '../../emulator/arm/auth.ts'
import { authorizeLinked } from '../../emulator/arm/authorize.ts'
import type { AccessTokenClaims } from '../../emulator/entra/tokens.ts'
import { credential, DEMO, startTestEmulator } from '../helpers/emulator.ts'

const ARM = 'https://management.azure.com/.default'
const API = 'api-version=2022-12-01'

interface ArmResponse {
  status: number
  headers: Headers
  body: { error?: { code: string; message: string }; value?: unknown[]; [key: string]: unknown }
}

describe('emulator: ARM authentication, RBAC and errors', () => {
  let emulator: Emulator
  let tokens: Record<'deployerB' | 'deployerA' | 'admin' | 'requester' | 'vault', string>

  before(async () => {
    emulator = await startTestEmulator()
    const token = async (tenant: string, app: string, scope = ARM) =>
      (await credential(emulator, tenant, app).getToken(scope)).token
    tokens = {
      deployerB: await token(DEMO.tenantB, DEMO.deployerAppId),
      deployerA: await token(DEMO.tenantA, DEMO.deployerAppId),
      admin: await token(DEMO.tenantA, DEMO.adminAppId),
      requester: await token(DEMO.tenantA, DEMO.requesterAppId),
      vault: await token(DEMO.tenantB, DEMO.deployerAppId, 'https://vault.azure.net/.default'),
    }
  })
  after(async () => emulator.close())

  async function arm(
    path: string,
    init: { token?: string; method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<ArmResponse> {
    const response = await fetch(`${emulator.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        ...(init.token && { authorization: `Bearer ${init.token}` }),
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
        ...init.headers,
      },
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    })
    const text = await response.text()
    return {
      status: response.status,
      headers: response.headers,
      body: text ? (JSON.parse(text) as ArmResponse['body']) : {},
    }
  }

  const groupB = `/subscriptions/${DEMO.subscriptionB}/resourceGroups/${DEMO.resourceGroupB}`

  it('refuses a request without a token, with request and correlation ids on the answer', async () => {
    const res = await arm(`${groupB}?${API}`, {
      headers: { 'x-ms-correlation-request-id': 'c0ffee00-0000-4000-8000-000000000001' },
    })
    assert.equal(res.status, 401)
    assert.equal(res.body.error?.code, 'AuthenticationFailed')
    assert.match(res.headers.get('x-ms-request-id') ?? '', /^[0-9a-f-]{36}$/)
    assert.equal(res.headers.get('x-ms-correlation-request-id'), 'c0ffee00-0000-4000-8000-000000000001')
  })

  it('requires api-version', async () => {
    const res = await arm(groupB, { token: tokens.deployerB })
    assert.equal(res.status, 400)
    assert.equal(res.body.error?.code, 'MissingApiVersionParameter')
  })

  it('refuses a token from another tenant than the subscription (InvalidAuthenticationTokenTenant)', async () => {
    const res = await arm(`${groupB}?${API}`, { token: tokens.deployerA })
    assert.equal(res.status, 401)
    assert.equal(res.body.error?.code, 'InvalidAuthenticationTokenTenant')
    assert.match(
      res.body.error?.message ?? '',
      new RegExp(
        `^The access token is from the wrong issuer 'https://sts.windows.net/${DEMO.tenantA}/'. It must match the tenant 'https://sts.windows.net/${DEMO.tenantB}/' associated with this subscription.`,
      ),
    )
  })

  it('refuses wrong audiences, bad signatures and expired tokens', async () => {
    const audience = await arm(`${groupB}?${API}`, { token: tokens.vault })
    assert.equal(audience.status, 401)
    assert.equal(audience.body.error?.code, 'InvalidAuthenticationToken')
    assert.match(audience.body.error?.message ?? '', /wrong audience/)

    const [header, payload] = tokens.deployerB.split('.')
    const forged = `${header}.${payload}.${'A'.repeat(342)}`
    assert.equal((await arm(`${groupB}?${API}`, { token: forged })).body.error?.code, 'InvalidAuthenticationToken')

    emulator.state.clockOffsetMs = 2 * 3600_000
    try {
      const expired = await arm(`${groupB}?${API}`, { token: tokens.deployerB })
      assert.equal(expired.status, 401)
      assert.equal(expired.body.error?.code, 'ExpiredAuthenticationToken')
    } finally {
      emulator.state.clockOffsetMs = 0
    }
  })

  it('validates every auxiliary token and takes at most three', async () => {
    const aux = (n: number, token = tokens.deployerA) => ({
      'x-ms-authorization-auxiliary': Array(n).fill(`Bearer ${token}`).join(', '),
    })
    assert.equal((await arm(`${groupB}?${API}`, { token: tokens.deployerB, headers: aux(3) })).status, 200)
    const four = await arm(`${groupB}?${API}`, { token: tokens.deployerB, headers: aux(4) })
    assert.equal(four.status, 400)
    assert.match(four.body.error?.message ?? '', /at most 3/)
    const bad = await arm(`${groupB}?${API}`, { token: tokens.deployerB, headers: aux(1, tokens.vault) })
    assert.equal(bad.status, 401)
    assert.match(bad.body.error?.message ?? '', /auxiliary access token/)
  })

  it('lists the subscriptions a principal holds roles in, and answers resource groups', async () => {
    const list = await arm(`/subscriptions?api-version=2019-11-01`, { token: tokens.deployerB })
    assert.deepEqual(
      (list.body.value as { subscriptionId: string; tenantId: string }[]).map((s) => [s.subscriptionId, s.tenantId]),
      [[DEMO.subscriptionB, DEMO.tenantB]],
    )
    const group = await arm(`${groupB}?${API}`, { token: tokens.deployerB })
    assert.equal(group.status, 200)
    assert.equal(group.body['name'], DEMO.resourceGroupB)
    assert.equal(
      (await arm(`/subscriptions/${DEMO.subscriptionB}/resourceGroups/nope?${API}`, { token: tokens.deployerB })).body
        .error?.code,
      'ResourceGroupNotFound',
    )
    assert.equal(
      (
        await arm(`/subscriptions/00000000-0000-4000-8000-000000000999/resourceGroups/x?${API}`, {
          token: tokens.deployerB,
        })
      ).body.error?.code,
      'SubscriptionNotFound',
    )
  })

  it('refuses a principal without a role (AuthorizationFailed) in ARM words', async () => {
    const res = await arm(`/subscriptions/${DEMO.subscriptionA}/resourceGroups/${DEMO.resourceGroupA}?${API}`, {
      token: tokens.requester,
    })
    assert.equal(res.status, 403)
    assert.equal(res.body.error?.code, 'AuthorizationFailed')
    assert.match(
      res.body.error?.message ?? '',
      /does not have authorization to perform action 'Microsoft\.Resources\/subscriptions\/resourceGroups\/read' over scope/,
    )
  })

  it('manages role assignments; a role at a scope reaches everything below it', async () => {
    const scope = `/subscriptions/${DEMO.subscriptionA}/resourceGroups/${DEMO.resourceGroupA}`
    const definitions = await arm(
      `${scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Reader'&${API}`,
      { token: tokens.admin },
    )
    const reader = (definitions.body.value as { id: string; name: string }[])[0]
    assert.equal(reader?.name, 'acdd72a7-3385-48ef-bd42-f606fba81ae7')
    const ipamPoolUser = await arm(
      `${scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'IPAM Pool User'&${API}`,
      { token: tokens.admin },
    )
    assert.equal((ipamPoolUser.body.value as { name: string }[])[0]?.name, '7b3e853f-ad5d-4fb5-a7b8-56a3581c7037')

    const requesterSp = emulator.state.servicePrincipal(DEMO.requesterAppId, DEMO.tenantA)!
    const assignment = `${scope}/providers/Microsoft.Authorization/roleAssignments/5a1e0000-0000-4000-8000-000000000001?${API}`
    const body = { properties: { roleDefinitionId: reader.id, principalId: requesterSp.objectId } }
    assert.equal(
      (await arm(assignment, { method: 'PUT', token: tokens.requester, body })).body.error?.code,
      'AuthorizationFailed',
    )
    const created = await arm(assignment, { method: 'PUT', token: tokens.admin, body })
    assert.equal(created.status, 201)
    assert.equal((created.body['properties'] as { scope: string }).scope, scope)

    const below = `${scope}/providers/Microsoft.Network/virtualNetworks/some-vnet`
    assert.ok(emulator.state.rbac.isAllowed(requesterSp.objectId, 'Microsoft.Network/virtualNetworks/read', below))
    assert.ok(!emulator.state.rbac.isAllowed(requesterSp.objectId, 'Microsoft.Network/virtualNetworks/write', below))
    assert.equal((await arm(`${scope}?${API}`, { token: tokens.requester })).status, 200)

    const again = await arm(
      `${scope}/providers/Microsoft.Authorization/roleAssignments/5a1e0000-0000-4000-8000-000000000002?${API}`,
      { method: 'PUT', token: tokens.admin, body },
    )
    assert.equal(again.body.error?.code, 'RoleAssignmentExists')
    const listed = await arm(
      `${scope}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${requesterSp.objectId}'&${API}`,
      { token: tokens.admin },
    )
    assert.equal(listed.body.value?.length, 1)
    const stranger = await arm(
      `${scope}/providers/Microsoft.Authorization/roleAssignments/5a1e0000-0000-4000-8000-000000000003?${API}`,
      {
        method: 'PUT',
        token: tokens.admin,
        body: { properties: { roleDefinitionId: reader.id, principalId: '99999999-0000-4000-8000-000000000009' } },
      },
    )
    assert.equal(stranger.body.error?.code, 'PrincipalNotFound')

    assert.equal((await arm(assignment, { method: 'DELETE', token: tokens.admin })).status, 200)
    assert.equal((await arm(`${scope}?${API}`, { token: tokens.requester })).status, 403)
  })

  it('answers what it does not implement with 501 in ARM shape', async () => {
    const res = await arm(`/subscriptions/${DEMO.subscriptionB}/providers/Microsoft.Compute/virtualMachines?${API}`, {
      token: tokens.deployerB,
    })
    assert.equal(res.status, 501)
    assert.equal(res.body.error?.code, 'NotImplemented')
  })

  it('authorizes linked resources in another tenant only through an auxiliary token with the right role', () => {
    const claims = (tenant: string, app: string): AccessTokenClaims => {
      const sp = emulator.state.servicePrincipal(app, tenant)!
      return { tid: tenant, oid: sp.objectId, appid: app } as AccessTokenClaims
    }
    const action = 'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action'
    const noAux: ArmCaller = { primary: claims(DEMO.tenantB, DEMO.deployerAppId), auxiliary: new Map() }
    assert.throws(
      () => authorizeLinked(emulator.state, noAux, action, DEMO.poolRetail),
      /not authorized to access linked subscription/,
    )
    const withAux: ArmCaller = {
      ...noAux,
      auxiliary: new Map([[DEMO.tenantA, claims(DEMO.tenantA, DEMO.deployerAppId)]]),
    }
    assert.doesNotThrow(() => authorizeLinked(emulator.state, withAux, action, DEMO.poolRetail))
    const otherPool = DEMO.poolRetail.replace('pool-retail', 'pool-other')
    assert.throws(
      () => authorizeLinked(emulator.state, withAux, action, otherPool),
      /LinkedAuthorizationFailed|does not have permission to perform action/,
    )
  })
})
