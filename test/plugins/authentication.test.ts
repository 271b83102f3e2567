import assert from 'node:assert/strict'
import { createPublicKey, randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import {
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from 'jose'
import supertest from 'supertest'
import { recordSecret } from '../../emulator/common/secret-record.ts'
import { DEMO_CALLERS, DEMO_IDS } from '../../emulator/demo-broker.ts'
import { startTestBroker, type TestBroker } from '../helpers/broker.ts'
import { credential } from '../helpers/emulator.ts'

const API_SCOPE = 'api://ipam-broker/.default'
const ARM_SCOPE = 'https://management.azure.com/.default'
/** contoso-network-admin: an app of tenant A holding no role on the broker's API. */
const ROLELESS_APP_ID = 'f4f4f4f4-0000-4000-8000-0000000000f4'
const HOUR_MS = 3_600_000

const vnetRequest = (name: string) => ({
  subscriptionId: DEMO_IDS.subscriptionB,
  resourceGroup: 'rg-retail-network',
  name,
  location: 'westeurope',
  ipamAllocations: [{ poolId: `${DEMO_IDS.networkManagerId}/ipamPools/pool-retail`, numberOfIpAddresses: '256' }],
  team: 'retail-network',
  ticket: 'CHG-AUTH',
})

interface Problem {
  status: number
  code: string
  detail: string
  reason?: string
  requiredRoles?: string[]
}

describe('authentication through the HTTP stack (Entra tokens, RFC 9457, RFC 6750)', () => {
  let broker: TestBroker
  let authority: string
  /** Bad credentials by case, each with the reason the broker must give. */
  const rejected: { name: string; authorization: string | undefined; reason: string }[] = []

  before(async () => {
    broker = await startTestBroker()
    const { emulator } = broker.azure
    authority = `${broker.azure.url}/${DEMO_IDS.tenantA}`
    const requester = () => credential(emulator, DEMO_IDS.tenantA, DEMO_CALLERS.Requester)
    const valid = await broker.azure.token('Requester')
    const claims: JWTPayload = decodeJwt(valid)
    const { kid } = decodeProtectedHeader(valid)

    // Issued two hours ago by the emulator's clock: it expired about an hour before the broker sees it.
    emulator.state.clockOffsetMs = -2 * HOUR_MS
    const expired = await requester()
      .getToken(API_SCOPE)
      .finally(() => (emulator.state.clockOffsetMs = 0))

    const forArm = await requester().getToken(ARM_SCOPE)

    // The broker's API consented in tenant B (multi-tenant registration): Entra issues tokens for it there.
    emulator.state.applications.get(DEMO_IDS.brokerAppId)!.signInAudience = 'AzureADMultipleOrgs'
    emulator.state.servicePrincipals.push({
      objectId: randomUUID(),
      appId: DEMO_IDS.brokerAppId,
      tenantId: DEMO_IDS.tenantB,
    })
    const otherTenant = await credential(emulator, DEMO_IDS.tenantB, DEMO_IDS.deployerAppId).getToken(API_SCOPE)

    // Entra's v1 issuer for tenant A, on a token signed by a key Entra never published.
    const { privateKey: foreignKey } = await generateKeyPair('RS256')
    const wrongIssuer = await new SignJWT({ ...claims, iss: `https://sts.windows.net/${DEMO_IDS.tenantA}/` })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'foreign-key' })
      .sign(foreignKey)

    // The Requester's own token with Admin added to its roles: header and signature left as they were.
    const [header, , signature] = valid.split('.')
    const tampered = Buffer.from(JSON.stringify({ ...claims, roles: ['Requester', 'Admin'] })).toString('base64url')
    const badSignature = `${header}.${tampered}.${signature}`

    const unsigned = new UnsecuredJWT(claims).encode()

    // Alg confusion: HMAC keyed with the public key a verifier would load from the JWKS.
    const jwks = (await (await fetch(`${authority}/discovery/v2.0/keys`)).json()) as { keys: JWK[] }
    const published = jwks.keys.find((key) => key.kid === kid)
    assert.ok(published, `the JWKS publishes the key ${kid}`)
    const publicPem = createPublicKey({ key: published, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid })
      .sign(Buffer.from(publicPem))

    // Not the emulator's: recorded here, so that the run's leak scan looks for them in the logs as well.
    for (const forged of [wrongIssuer, unsigned, hs256]) recordSecret('forged-token', forged)

    rejected.push(
      { name: 'no token', authorization: undefined, reason: 'missing-token' },
      { name: 'expired token', authorization: `Bearer ${expired.token}`, reason: 'expired' },
      { name: 'ARM token (wrong audience)', authorization: `Bearer ${forArm.token}`, reason: 'wrong-audience' },
      { name: 'v1 issuer (wrong issuer)', authorization: `Bearer ${wrongIssuer}`, reason: 'wrong-issuer' },
      { name: 'tampered payload (bad signature)', authorization: `Bearer ${badSignature}`, reason: 'bad-signature' },
      { name: 'alg none', authorization: `Bearer ${unsigned}`, reason: 'unsigned-token' },
      { name: 'token of tenant B', authorization: `Bearer ${otherTenant.token}`, reason: 'other-tenant' },
      { name: 'HS256 keyed with the public key', authorization: `Bearer ${hs256}`, reason: 'unsupported-algorithm' },
    )
  })
  after(async () => broker.close())

  const postVnet = (authorization: string | undefined, name: string) => {
    const request = supertest(broker.app.server).post('/v1/vnets?wait=30')
    if (authorization) request.set('authorization', authorization)
    return request.send(vnetRequest(name))
  }

  /** What reached Azure and the ledger while `action` ran. */
  async function effectsOf(action: () => Promise<void>) {
    const operationsBefore = await broker.prisma.operation.count()
    const logBefore = broker.azure.emulator.requestLog.entries.length
    await action()
    return {
      operationsAdded: (await broker.prisma.operation.count()) - operationsBefore,
      armRequests: broker.azure.emulator.requestLog.entries
        .slice(logBefore)
        .filter((entry) => entry.service === 'arm')
        .map((entry) => `${entry.method} ${entry.path}`),
    }
  }

  it('answers every bad token with 401, its own reason and a Bearer challenge, and runs nothing', async () => {
    const reasons: string[] = []
    for (const { name, authorization, reason } of rejected) {
      let response: supertest.Response | undefined
      const effects = await effectsOf(async () => {
        response = await postVnet(authorization, `vnet-auth-${reasons.length}`)
      })
      assert.ok(response)
      assert.equal(response.status, 401, `${name}: ${JSON.stringify(response.body)}`)
      assert.match(response.headers['content-type'] ?? '', /^application\/problem\+json/)
      const problem = response.body as Problem
      assert.equal(problem.code, 'unauthenticated', name)
      assert.equal(problem.reason, reason, `${name}: ${problem.detail}`)
      assert.equal(
        response.headers['www-authenticate'],
        reason === 'missing-token'
          ? `Bearer authorization_uri="${authority}"`
          : `Bearer authorization_uri="${authority}", error="invalid_token", error_description="${problem.detail}"`,
        name,
      )
      assert.deepEqual(effects, { operationsAdded: 0, armRequests: [] }, name)
      reasons.push(problem.reason)
    }
    assert.equal(new Set(reasons).size, rejected.length, `distinct reasons: ${reasons.join(', ')}`)
  })

  it('names the tenants and the expected audience in the detail', async () => {
    const detailOf = async (name: string) => {
      const response = await postVnet(rejected.find((r) => r.name === name)?.authorization, 'vnet-auth-detail')
      return (response.body as Problem).detail
    }
    assert.equal(
      await detailOf('token of tenant B'),
      `The token was issued for tenant ${DEMO_IDS.tenantB}; this API accepts tokens of tenant ${DEMO_IDS.tenantA} only.`,
    )
    assert.equal(
      await detailOf('ARM token (wrong audience)'),
      `The token is not for this API; ask for a token whose audience is ${DEMO_IDS.brokerAppId}.`,
    )
    assert.equal(await detailOf('v1 issuer (wrong issuer)'), `The token was not issued by ${authority}/v2.0.`)
  })

  it('answers a header that is not "Bearer <token>" with invalid_request, quotes kept out of the challenge', async () => {
    const response = await postVnet('Basic dXNlcjpwYXNz', 'vnet-auth-basic')
    assert.equal(response.status, 401)
    assert.equal((response.body as Problem).reason, 'malformed-token')
    assert.equal(
      response.headers['www-authenticate'],
      `Bearer authorization_uri="${authority}", error="invalid_request", error_description="The Authorization header must be 'Bearer <token>'."`,
    )
  })

  it('answers a valid token without an app role with 403 role-required, and runs nothing', async () => {
    const { token } = await credential(broker.azure.emulator, DEMO_IDS.tenantA, ROLELESS_APP_ID).getToken(API_SCOPE)
    assert.equal(decodeJwt(token)['roles'], undefined)
    let response: supertest.Response | undefined
    const effects = await effectsOf(async () => {
      response = await postVnet(`Bearer ${token}`, 'vnet-auth-roleless')
    })
    assert.ok(response)
    assert.equal(response.status, 403, JSON.stringify(response.body))
    const problem = response.body as Problem
    assert.equal(problem.code, 'role-required')
    assert.deepEqual(problem.requiredRoles, ['Requester', 'Admin'])
    assert.equal(problem.detail, 'This operation needs one of the app roles Requester, Admin; the token carries none.')
    assert.deepEqual(effects, { operationsAdded: 0, armRequests: [] })
  })

  it('runs the same request with a valid Requester token: the checks above can see an execution', async () => {
    let response: supertest.Response | undefined
    const effects = await effectsOf(async () => {
      response = await postVnet(`Bearer ${await broker.azure.token('Requester')}`, 'vnet-auth-control')
    })
    assert.ok(response)
    assert.equal(response.status, 200, JSON.stringify(response.body))
    assert.equal((response.body as { state: string }).state, 'succeeded')
    assert.equal(effects.operationsAdded, 1)
    assert.ok(
      effects.armRequests.includes(
        `PUT /subscriptions/${DEMO_IDS.subscriptionB}/resourceGroups/rg-retail-network/providers/Microsoft.Network/virtualNetworks/vnet-auth-control`,
      ),
      effects.armRequests.join('\n'),
    )
  })
})
