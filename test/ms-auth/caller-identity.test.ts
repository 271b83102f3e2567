import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { type CryptoKey, decodeJwt, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import type { Emulator } from '../../emulator/index.ts'
import { AuthenticationError, CallerAuthenticator } from '../../src/ms-auth/caller-identity.ts'
import { credential, DEMO, startTestEmulator } from '../helpers/emulator.ts'

const API_SCOPE = 'api://ipam-broker/.default'
const HOUR_MS = 3_600_000

/** The reason `authenticate` rejects with (and that it does reject). */
async function reasonOf(authenticator: CallerAuthenticator, authorization: string | undefined): Promise<string> {
  const failure = await authenticator.authenticate(authorization).then(
    () => assert.fail('the token was accepted'),
    (err: unknown) => err,
  )
  assert.ok(failure instanceof AuthenticationError, String(failure))
  return failure.reason
}

describe('CallerAuthenticator against the emulated Entra ID', () => {
  let emulator: Emulator
  let authenticator: CallerAuthenticator
  let validClaims: JWTPayload
  /** A key Entra never published: what a forger or a foreign issuer signs with. */
  let foreignKey: CryptoKey

  const forge = (claims: JWTPayload, kid = 'not-an-entra-key') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(foreignKey)

  before(async () => {
    emulator = await startTestEmulator()
    authenticator = new CallerAuthenticator({
      authorityHost: emulator.url,
      tenantId: DEMO.tenantA,
      audiences: [DEMO.brokerAppId],
    })
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(API_SCOPE)
    validClaims = decodeJwt(token)
    ;({ privateKey: foreignKey } = await generateKeyPair('RS256'))
  })
  after(async () => emulator.close())

  it("turns a valid token into the caller's principal", async () => {
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(API_SCOPE)
    const principal = await authenticator.authenticate(`Bearer ${token}`)
    assert.deepEqual(principal, {
      oid: emulator.state.servicePrincipal(DEMO.requesterAppId, DEMO.tenantA)?.objectId,
      tenantId: DEMO.tenantA,
      appId: DEMO.requesterAppId,
      name: undefined,
      roles: ['Requester'],
      groups: [],
    })
  })

  it('accepts the tenant id in upper case in configuration, as Entra writes it in lower case', async () => {
    const upper = new CallerAuthenticator({
      authorityHost: `${emulator.url}/`,
      tenantId: DEMO.tenantA.toUpperCase(),
      audiences: [DEMO.brokerAppId],
    })
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(API_SCOPE)
    assert.equal((await upper.authenticate(`Bearer ${token}`)).tenantId, DEMO.tenantA)
  })

  it('refuses an Authorization header that is not a bearer JWT', async () => {
    assert.equal(await reasonOf(authenticator, undefined), 'missing-token')
    assert.equal(await reasonOf(authenticator, 'Basic dXNlcjpwYXNz'), 'malformed-token')
    assert.equal(await reasonOf(authenticator, 'Bearer not-a-jwt'), 'malformed-token')
  })

  it('refuses a token whose nbf is ahead of the clock beyond the tolerance', async () => {
    emulator.state.clockOffsetMs = 2 * HOUR_MS
    try {
      const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(API_SCOPE)
      assert.equal(await reasonOf(authenticator, `Bearer ${token}`), 'not-yet-valid')
    } finally {
      emulator.state.clockOffsetMs = 0
    }
  })

  it('says other-tenant for a genuine token of another tenant, naming both tenants', async () => {
    // The broker's API consented in tenant B (a multi-tenant registration): Entra then issues tokens for it there.
    emulator.state.applications.get(DEMO.brokerAppId)!.signInAudience = 'AzureADMultipleOrgs'
    emulator.state.servicePrincipals.push({ objectId: randomUUID(), appId: DEMO.brokerAppId, tenantId: DEMO.tenantB })
    const { token } = await credential(emulator, DEMO.tenantB, DEMO.deployerAppId).getToken(API_SCOPE)
    assert.equal(decodeJwt(token).iss, `${emulator.url}/${DEMO.tenantB}/v2.0`)
    const failure = await authenticator.authenticate(`Bearer ${token}`).catch((err: unknown) => err)
    assert.ok(failure instanceof AuthenticationError)
    assert.equal(failure.reason, 'other-tenant')
    assert.equal(
      failure.message,
      `The token was issued for tenant ${DEMO.tenantB}; this API accepts tokens of tenant ${DEMO.tenantA} only.`,
    )
  })

  it('says wrong-issuer when the issuer is not this authority, or contradicts the tid', async () => {
    const cases = {
      'Entra v1 issuer': `https://sts.windows.net/${DEMO.tenantA}/`,
      'another authority host': `https://login.microsoftonline.com/${DEMO.tenantA}/v2.0`,
      'no issuer': undefined,
    }
    for (const [name, iss] of Object.entries(cases)) {
      assert.equal(
        await reasonOf(authenticator, `Bearer ${await forge({ ...validClaims, iss })}`),
        'wrong-issuer',
        name,
      )
    }
    // Tenant B's issuer on a token that claims tenant A: not a token Entra would issue.
    const mixed = await forge({ ...validClaims, iss: `${emulator.url}/${DEMO.tenantB}/v2.0`, tid: DEMO.tenantA })
    assert.equal(await reasonOf(authenticator, `Bearer ${mixed}`), 'wrong-issuer')
  })

  it('checks the audience before the issuer: a token for another API says wrong-audience', async () => {
    const forArm = await forge({ ...validClaims, aud: 'https://management.azure.com', iss: 'https://elsewhere' })
    assert.equal(await reasonOf(authenticator, `Bearer ${forArm}`), 'wrong-audience')
    // An audience list that names this API passes; only the forged signature fails.
    const several = await forge({ ...validClaims, aud: ['https://graph.microsoft.com', DEMO.brokerAppId] })
    assert.equal(await reasonOf(authenticator, `Bearer ${several}`), 'bad-signature')
  })

  it('says bad-signature for right claims signed with a key Entra never published, known kid or not', async () => {
    assert.equal(await reasonOf(authenticator, `Bearer ${await forge(validClaims)}`), 'bad-signature')
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(API_SCOPE)
    const [header] = token.split('.')
    const kid = (JSON.parse(Buffer.from(header!, 'base64url').toString()) as { kid: string }).kid
    assert.equal(await reasonOf(authenticator, `Bearer ${await forge(validClaims, kid)}`), 'bad-signature')
  })

  it('says issuer-unreachable when the signing keys cannot be fetched', async () => {
    const unreachableHost = 'https://localhost:1'
    const offline = new CallerAuthenticator({
      authorityHost: unreachableHost,
      tenantId: DEMO.tenantA,
      audiences: [DEMO.brokerAppId],
    })
    const token = await forge({ ...validClaims, iss: `${unreachableHost}/${DEMO.tenantA}/v2.0` })
    assert.equal(await reasonOf(offline, `Bearer ${token}`), 'issuer-unreachable')
  })
})
