import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ClientCertificateCredential } from '@azure/identity'
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { generateClientCertificate } from '../../emulator/common/tls.ts'
import type { Emulator } from '../../emulator/index.ts'
import { parseSeed } from '../../emulator/seed.ts'
import { credential, DEMO, password, startTestEmulator } from '../helpers/emulator.ts'

const ARM_SCOPE = 'https://management.azure.com/.default'

async function postToken(emulator: Emulator, tenant: string, form: Record<string, string>) {
  const response = await fetch(`${emulator.url}/${tenant}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  })
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  }
}

describe('emulator: Entra ID through @azure/identity', () => {
  let emulator: Emulator
  before(async () => {
    emulator = await startTestEmulator()
  })
  after(async () => emulator.close())

  it('issues an ARM token in the app home tenant with the claims ARM checks', async () => {
    const { token, expiresOnTimestamp } = await credential(emulator, DEMO.tenantB, DEMO.deployerAppId).getToken(
      ARM_SCOPE,
    )
    const claims = decodeJwt(token)
    const sp = emulator.state.servicePrincipal(DEMO.deployerAppId, DEMO.tenantB)
    assert.equal(decodeProtectedHeader(token).alg, 'RS256')
    assert.equal(claims.aud, 'https://management.azure.com')
    assert.equal(claims.iss, `https://sts.windows.net/${DEMO.tenantB}/`)
    assert.equal(claims['tid'], DEMO.tenantB)
    assert.equal(claims['appid'], DEMO.deployerAppId)
    assert.equal(claims['oid'], sp?.objectId)
    assert.ok(claims.nbf! <= claims.iat! && claims.exp! - claims.iat! === 3599)
    assert.ok(Math.abs(expiresOnTimestamp - claims.exp! * 1000) < 5000)
  })

  it('signs with a key published through discovery and JWKS', async () => {
    const discovery = (await (
      await fetch(`${emulator.url}/${DEMO.tenantA}/v2.0/.well-known/openid-configuration`)
    ).json()) as Record<string, string>
    assert.equal(discovery['issuer'], `${emulator.url}/${DEMO.tenantA}/v2.0`)
    assert.equal(discovery['token_endpoint'], `${emulator.url}/${DEMO.tenantA}/oauth2/v2.0/token`)
    assert.ok(discovery['authorization_endpoint'])
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.deployerAppId).getToken(ARM_SCOPE)
    const keys = createRemoteJWKSet(new URL(discovery['jwks_uri']!))
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ['RS256'],
      audience: 'https://management.azure.com',
    })
    assert.equal(payload['tid'], DEMO.tenantA)
  })

  it('serves v1 and v2 discovery for tenants, common and organizations; unknown tenants get AADSTS90002', async () => {
    for (const tenant of [DEMO.tenantC, 'common', 'organizations']) {
      for (const path of ['v2.0/.well-known/openid-configuration', '.well-known/openid-configuration']) {
        const response = await fetch(`${emulator.url}/${tenant}/${path}`)
        assert.equal(response.status, 200, `${tenant}/${path}`)
        const document = (await response.json()) as Record<string, string>
        for (const field of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri'])
          assert.ok(document[field], field)
      }
    }
    const common = (await (
      await fetch(`${emulator.url}/common/v2.0/.well-known/openid-configuration`)
    ).json()) as Record<string, string>
    assert.equal(common['issuer'], `${emulator.url}/{tenantid}/v2.0`)
    const unknown = await fetch(
      `${emulator.url}/00000000-0000-4000-8000-000000000999/v2.0/.well-known/openid-configuration`,
    )
    assert.equal(unknown.status, 400)
    assert.match(((await unknown.json()) as { error_description: string }).error_description, /^AADSTS90002: Tenant/)
  })

  it('issues a multi-tenant app token in a foreign tenant where it has a service principal', async () => {
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.deployerAppId).getToken(ARM_SCOPE)
    const claims = decodeJwt(token)
    assert.equal(claims['tid'], DEMO.tenantA)
    assert.equal(claims['oid'], emulator.state.servicePrincipal(DEMO.deployerAppId, DEMO.tenantA)?.objectId)
    assert.notEqual(claims['oid'], emulator.state.servicePrincipal(DEMO.deployerAppId, DEMO.tenantB)?.objectId)
  })

  it('refuses a single-tenant app outside its home tenant with AADSTS700016', async () => {
    await assert.rejects(credential(emulator, DEMO.tenantB, DEMO.requesterAppId).getToken(ARM_SCOPE), /AADSTS700016/)
  })

  it('answers a wrong secret with AADSTS7000215 in Entra error shape', async () => {
    await assert.rejects(
      credential(emulator, DEMO.tenantB, DEMO.deployerAppId, 'not-the-secret').getToken(ARM_SCOPE),
      /AADSTS7000215/,
    )
    const raw = await postToken(emulator, DEMO.tenantB, {
      grant_type: 'client_credentials',
      client_id: DEMO.deployerAppId,
      client_secret: 'not-the-secret',
      scope: ARM_SCOPE,
    })
    assert.equal(raw.status, 401)
    assert.equal(raw.body['error'], 'invalid_client')
    assert.deepEqual(raw.body['error_codes'], [7000215])
    assert.match(
      String(raw.body['error_description']),
      /^AADSTS7000215: Invalid client secret provided\. .* Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: /,
    )
    for (const field of ['timestamp', 'trace_id', 'correlation_id', 'error_uri']) assert.ok(raw.body[field], field)
    assert.ok(raw.headers.get('x-ms-request-id'))
  })

  it('refuses other grant types and scopes without /.default', async () => {
    const secret = password(emulator, DEMO.deployerAppId)
    const grant = await postToken(emulator, DEMO.tenantB, {
      grant_type: 'password',
      client_id: DEMO.deployerAppId,
      client_secret: secret,
      scope: ARM_SCOPE,
    })
    assert.equal(grant.body['error'], 'unsupported_grant_type')
    const scope = await postToken(emulator, DEMO.tenantB, {
      grant_type: 'client_credentials',
      client_id: DEMO.deployerAppId,
      client_secret: secret,
      scope: 'https://management.azure.com/user_impersonation',
    })
    assert.equal(scope.status, 400)
    assert.equal(scope.body['error'], 'invalid_scope')
  })

  it("issues tokens for the broker's own API with its app roles", async () => {
    const { token } = await credential(emulator, DEMO.tenantA, DEMO.requesterAppId).getToken(
      'api://ipam-broker/.default',
    )
    const claims = decodeJwt(token)
    assert.equal(claims.aud, DEMO.brokerAppId)
    assert.equal(claims.iss, `${emulator.url}/${DEMO.tenantA}/v2.0`)
    assert.deepEqual(claims['roles'], ['Requester'])
    assert.equal(claims['azp'], DEMO.requesterAppId)
  })

  it('counts token requests per tenant and app; the SDK caches tokens until near expiry', async () => {
    const key = `${DEMO.tenantC}/${DEMO.deployerAppId}`
    const before = emulator.state.counters.tokenRequests.get(key) ?? 0
    const deployer = credential(emulator, DEMO.tenantC, DEMO.deployerAppId)
    for (let i = 0; i < 5; i++) await deployer.getToken(ARM_SCOPE)
    assert.equal(emulator.state.counters.tokenRequests.get(key), before + 1)
  })
})

describe('emulator: multi-tenant consent (the stub service principal)', () => {
  let emulator: Emulator
  const home = '11111111-0000-4000-8000-000000000001'
  const foreign = '22222222-0000-4000-8000-000000000002'
  const appId = '33333333-0000-4000-8000-000000000003'
  before(async () => {
    emulator = await startTestEmulator(
      parseSeed({
        tenants: [
          { id: home, displayName: 'home' },
          { id: foreign, displayName: 'foreign' },
        ],
        applications: [
          { appId, displayName: 'app', homeTenantId: home, signInAudience: 'AzureADMultipleOrgs', passwords: 1 },
        ],
      }),
    )
  })
  after(async () => emulator.close())

  it('needs a service principal in the foreign tenant, and then issues the token', async () => {
    await assert.rejects(credential(emulator, foreign, appId).getToken(ARM_SCOPE), /AADSTS700016/)
    emulator.state.servicePrincipals.push({
      objectId: '44444444-0000-4000-8000-000000000004',
      appId,
      tenantId: foreign,
    })
    const { token } = await credential(emulator, foreign, appId).getToken(ARM_SCOPE)
    assert.equal(decodeJwt(token)['oid'], '44444444-0000-4000-8000-000000000004')
  })

  it('refuses a single-tenant app in the foreign tenant even with a service principal', async () => {
    emulator.state.applications.get(appId)!.signInAudience = 'AzureADMyOrg'
    await assert.rejects(credential(emulator, foreign, appId).getToken(ARM_SCOPE), /AADSTS700016/)
  })
})

describe('emulator: certificate credentials (client assertions)', () => {
  let emulator: Emulator
  const tenant = '55555555-0000-4000-8000-000000000005'
  const appId = '66666666-0000-4000-8000-000000000006'
  before(async () => {
    emulator = await startTestEmulator(
      parseSeed({
        tenants: [{ id: tenant, displayName: 'certs' }],
        applications: [
          { appId, displayName: 'cert-app', homeTenantId: tenant, signInAudience: 'AzureADMyOrg', certificates: 1 },
        ],
      }),
    )
  })
  after(async () => emulator.close())

  const certificateCredential = (pem: string) =>
    new ClientCertificateCredential(
      tenant,
      appId,
      { certificate: pem },
      { authorityHost: emulator.url, disableInstanceDiscovery: true },
    )

  it('issues a token for an assertion signed with a registered certificate', async () => {
    const registered = emulator.state.applications.get(appId)!.certificates[0]!
    const { token } = await certificateCredential(`${registered.certificatePem}\n${registered.privateKeyPem}`).getToken(
      ARM_SCOPE,
    )
    assert.equal(decodeJwt(token)['appid'], appId)
  })

  it('refuses an assertion signed with a certificate the app does not have (AADSTS700027)', async () => {
    const stranger = await generateClientCertificate('stranger')
    await assert.rejects(
      certificateCredential(`${stranger.certificatePem}\n${stranger.privateKeyPem}`).getToken(ARM_SCOPE),
      /AADSTS700027/,
    )
  })
})
