import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import type { Emulator } from '../../emulator/index.ts'
import { parseSeed } from '../../emulator/seed.ts'
import { credential, startTestEmulator } from '../helpers/emulator.ts'

const GRAPH_SCOPE = 'https://graph.microsoft.com/.default'
const ARM_SCOPE = 'https://management.azure.com/.default'

const home = '11111111-0000-4000-8000-000000000001'
const foreign = '22222222-0000-4000-8000-000000000002'
const appId = '33333333-0000-4000-8000-000000000003'
const homeAdmin = '44444444-0000-4000-8000-000000000004'
const foreignAdmin = '55555555-0000-4000-8000-000000000005'
const unknownAppId = '99999999-0000-4000-8000-000000000009'

interface PasswordJson {
  keyId: string
  displayName: string | null
  hint: string
  endDateTime: string
  secretText: string | null
}

interface GraphObject {
  id: string
  appId: string
  displayName: string
  signInAudience: string
  identifierUris: string[]
  passwordCredentials: PasswordJson[]
  appRoles: { id: string; value: string; allowedMemberTypes: string[]; isEnabled: boolean }[]
  appOwnerOrganizationId: string
  servicePrincipalType: string
  accountEnabled: boolean
}

/** Any of the answers these tests read: an object, a collection, a new password or an error. */
type GraphBody = GraphObject &
  PasswordJson & {
    '@odata.context': string
    value: GraphObject[]
    error: {
      code: string
      message: string
      innerError: { date: string; 'request-id': string; 'client-request-id': string }
    }
  }

interface GraphResponse {
  status: number
  headers: Headers
  body: GraphBody
}

describe('emulator: Microsoft Graph (app registrations and service principals)', () => {
  let emulator: Emulator
  const tokens = new Map<string, string>()

  async function graphToken(tenant: string, clientId: string): Promise<string> {
    const key = `${tenant}/${clientId}`
    let token = tokens.get(key)
    if (!token) {
      token = (await credential(emulator, tenant, clientId).getToken(GRAPH_SCOPE)).token
      tokens.set(key, token)
    }
    return token
  }

  async function graph(
    method: string,
    path: string,
    { as, body, token }: { as?: [tenant: string, clientId: string]; body?: unknown; token?: string } = {},
  ): Promise<GraphResponse> {
    const headers: Record<string, string> = { 'client-request-id': '0f0f0f0f-0000-4000-8000-00000000000f' }
    const bearer = token ?? (as ? await graphToken(...as) : undefined)
    if (bearer) headers['authorization'] = `Bearer ${bearer}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as GraphBody }
  }

  function assertGraphError(response: GraphResponse, status: number, code: string, message?: RegExp) {
    assert.equal(response.status, status, JSON.stringify(response.body))
    assert.equal(response.body.error.code, code)
    if (message) assert.match(response.body.error.message, message)
    const inner = response.body.error.innerError
    assert.match(inner.date, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/)
    assert.equal(inner['request-id'], response.headers.get('request-id'))
    assert.equal(inner['client-request-id'], '0f0f0f0f-0000-4000-8000-00000000000f')
  }

  const objectIdOf = (id: string) => emulator.state.applications.get(id)!.objectId

  before(async () => {
    emulator = await startTestEmulator(
      parseSeed({
        tenants: [
          { id: home, displayName: 'home' },
          { id: foreign, displayName: 'foreign' },
        ],
        applications: [
          {
            appId,
            displayName: 'ipam-client',
            homeTenantId: home,
            signInAudience: 'AzureADMyOrg',
            identifierUris: ['api://ipam-client'],
            appRoles: ['Reader', 'Writer'],
            passwords: 1,
          },
          {
            appId: homeAdmin,
            displayName: 'home-admin',
            homeTenantId: home,
            signInAudience: 'AzureADMyOrg',
            passwords: 1,
          },
          {
            appId: foreignAdmin,
            displayName: 'foreign-admin',
            homeTenantId: foreign,
            signInAudience: 'AzureADMyOrg',
            passwords: 1,
          },
        ],
      }),
    )
  })
  after(async () => emulator.close())

  it('consents a single-tenant app into another tenant after it is made multi-tenant (the stub principal flow)', async () => {
    await assert.rejects(credential(emulator, foreign, appId).getToken(ARM_SCOPE), /AADSTS700016/)

    // The foreign tenant cannot consent to a single-tenant app.
    const early = await graph('POST', '/v1.0/servicePrincipals', { as: [foreign, foreignAdmin], body: { appId } })
    assertGraphError(
      early,
      400,
      'Request_BadRequest',
      new RegExp(`^The appId '${appId}' of the service principal does not reference a valid application object\\.$`),
    )

    const patched = await graph('PATCH', `/v1.0/applications/${objectIdOf(appId)}`, {
      as: [home, homeAdmin],
      body: { signInAudience: 'AzureADMultipleOrgs' },
    })
    assert.equal(patched.status, 204)
    assert.equal(emulator.state.applications.get(appId)?.signInAudience, 'AzureADMultipleOrgs')

    const created = await graph('POST', '/v1.0/servicePrincipals', {
      as: [foreign, foreignAdmin],
      body: { appId, accountEnabled: true },
    })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal(created.body.appId, appId)
    assert.equal(created.body.displayName, 'ipam-client')
    assert.equal(created.body.appOwnerOrganizationId, home)
    assert.equal(created.body.servicePrincipalType, 'Application')
    assert.equal(created.body.accountEnabled, true)
    assert.equal(emulator.state.servicePrincipal(appId, foreign)?.objectId, created.body.id)

    const { token } = await credential(emulator, foreign, appId).getToken(ARM_SCOPE)
    const claims = decodeJwt(token)
    assert.equal(claims['tid'], foreign)
    assert.equal(claims['oid'], created.body.id)

    const duplicate = await graph('POST', '/v1.0/servicePrincipals', { as: [foreign, foreignAdmin], body: { appId } })
    assertGraphError(duplicate, 409, 'Request_MultipleObjectsWithSameKeyValue')
  })

  it('lists and reads applications of the caller tenant only, filtered by appId', async () => {
    const byAppId = await graph('GET', `/v1.0/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`, {
      as: [home, homeAdmin],
    })
    assert.equal(byAppId.status, 200)
    assert.equal(byAppId.body['@odata.context'], 'https://graph.microsoft.com/v1.0/$metadata#applications')
    assert.equal(byAppId.body.value.length, 1)
    const application = byAppId.body.value[0]!
    assert.equal(application.id, objectIdOf(appId))
    assert.equal(application.appId, appId)
    assert.equal(application.displayName, 'ipam-client')
    assert.deepEqual(application.identifierUris, ['api://ipam-client'])
    assert.ok(application.passwordCredentials.length >= 1)
    for (const password of application.passwordCredentials) {
      assert.equal(password.secretText, null)
      assert.equal(password.hint.length, 3)
      assert.ok(password.keyId && password.endDateTime)
    }
    assert.deepEqual(
      application.appRoles.map((role: { value: string }) => role.value),
      ['Reader', 'Writer'],
    )
    const reader = application.appRoles[0]!
    assert.deepEqual(reader.allowedMemberTypes, ['Application'])
    assert.equal(reader.isEnabled, true)
    assert.match(reader.id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)

    // Stable role ids: the same on a second read.
    const again = await graph('GET', `/v1.0/applications/${objectIdOf(appId)}`, { as: [home, homeAdmin] })
    assert.equal(again.status, 200)
    assert.equal(again.body.appRoles[0]!.id, reader.id)

    const byKey = await graph('GET', `/v1.0/applications(appId='${appId}')`, { as: [home, homeAdmin] })
    assert.equal(byKey.status, 200)
    assert.equal(byKey.body.id, objectIdOf(appId))

    const byUri = await graph(
      'GET',
      `/v1.0/applications?$filter=${encodeURIComponent("identifierUris/any(s:s eq 'api://ipam-client')")}`,
      { as: [home, homeAdmin] },
    )
    assert.deepEqual(
      byUri.body.value.map((a: { appId: string }) => a.appId),
      [appId],
    )

    const all = await graph('GET', '/v1.0/applications', { as: [home, homeAdmin] })
    assert.deepEqual(all.body.value.map((a: { appId: string }) => a.appId).sort(), [appId, homeAdmin].sort())

    // The app lives in its home tenant: the foreign tenant sees only its own applications.
    const fromForeign = await graph('GET', `/v1.0/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`, {
      as: [foreign, foreignAdmin],
    })
    assert.deepEqual(fromForeign.body.value, [])
    const readForeign = await graph('GET', `/v1.0/applications/${objectIdOf(appId)}`, { as: [foreign, foreignAdmin] })
    assertGraphError(
      readForeign,
      404,
      'Request_ResourceNotFound',
      new RegExp(
        `^Resource '${objectIdOf(appId)}' does not exist or one of its queried reference-property objects are not present\\.$`,
      ),
    )

    const unsupported = await graph('GET', `/v1.0/applications?$filter=${encodeURIComponent("tags/any(t:t eq 'x')")}`, {
      as: [home, homeAdmin],
    })
    assertGraphError(unsupported, 400, 'Request_UnsupportedQuery')
  })

  it('lists and reads service principals of the caller tenant, filtered by appId', async () => {
    const filtered = await graph(
      'GET',
      `/v1.0/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`,
      { as: [foreign, foreignAdmin] },
    )
    assert.equal(filtered.status, 200)
    assert.equal(filtered.body['@odata.context'], 'https://graph.microsoft.com/v1.0/$metadata#servicePrincipals')
    assert.equal(filtered.body.value.length, 1)
    const sp = filtered.body.value[0]!
    assert.equal(sp.id, emulator.state.servicePrincipal(appId, foreign)?.objectId)
    assert.equal(sp.appOwnerOrganizationId, home)

    const all = await graph('GET', '/v1.0/servicePrincipals', { as: [foreign, foreignAdmin] })
    assert.deepEqual(all.body.value.map((s: { appId: string }) => s.appId).sort(), [appId, foreignAdmin].sort())

    const byId = await graph('GET', `/v1.0/servicePrincipals/${sp.id}`, { as: [foreign, foreignAdmin] })
    assert.equal(byId.status, 200)
    assert.equal(byId.body.appId, appId)

    // Object ids are per tenant: the home tenant's view does not hold the foreign principal.
    const fromHome = await graph('GET', `/v1.0/servicePrincipals/${sp.id}`, { as: [home, homeAdmin] })
    assertGraphError(fromHome, 404, 'Request_ResourceNotFound')
    const homeSp = await graph('GET', `/v1.0/servicePrincipals(appId='${appId}')`, { as: [home, homeAdmin] })
    assert.equal(homeSp.body.id, emulator.state.servicePrincipal(appId, home)?.objectId)
  })

  it('adds a password whose secret works, and removes passwords', async () => {
    const added = await graph('POST', `/v1.0/applications/${objectIdOf(appId)}/addPassword`, {
      as: [home, homeAdmin],
      body: { passwordCredential: { displayName: 'rotated' } },
    })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.equal(added.body.displayName, 'rotated')
    assert.equal(typeof added.body.secretText, 'string')
    assert.equal(added.body.hint, added.body.secretText!.slice(0, 3))
    assert.ok(added.body.keyId)

    const { token } = await credential(emulator, home, appId, added.body.secretText!).getToken(ARM_SCOPE)
    assert.equal(decodeJwt(token)['appid'], appId)

    // As `az ad app credential reset` does without --append: remove the others, keep the new one.
    const listed = await graph('GET', `/v1.0/applications(appId='${appId}')`, { as: [home, homeAdmin] })
    const old = listed.body.passwordCredentials.filter((p: { keyId: string }) => p.keyId !== added.body.keyId)
    assert.equal(old.length, 1)
    const removed = await graph('POST', `/v1.0/applications/${objectIdOf(appId)}/removePassword`, {
      as: [home, homeAdmin],
      body: { keyId: old[0]!.keyId },
    })
    assert.equal(removed.status, 204)
    assert.deepEqual(
      emulator.state.applications.get(appId)?.passwords.map((p) => p.keyId),
      [added.body.keyId],
    )
    const again = await graph('POST', `/v1.0/applications/${objectIdOf(appId)}/removePassword`, {
      as: [home, homeAdmin],
      body: { keyId: old[0]!.keyId },
    })
    assertGraphError(again, 400, 'Request_BadRequest')

    // The alternate-key form, with an explicit end date.
    const end = new Date(Date.now() + 30 * 86_400_000)
    const byKey = await graph('POST', `/v1.0/applications(appId='${appId}')/addPassword`, {
      as: [home, homeAdmin],
      body: { passwordCredential: { displayName: null, endDateTime: end.toISOString() } },
    })
    assert.equal(byKey.status, 200)
    assert.equal(byKey.body.endDateTime, end.toISOString())
  })

  it('validates PATCH bodies and updates displayName', async () => {
    const path = `/v1.0/applications/${objectIdOf(homeAdmin)}`
    const invalid = await graph('PATCH', path, {
      as: [home, homeAdmin],
      body: { signInAudience: 'AzureADandPersonalMicrosoftAccount' },
    })
    assertGraphError(invalid, 400, 'Request_BadRequest', /signInAudience/)
    assert.equal(emulator.state.applications.get(homeAdmin)?.signInAudience, 'AzureADMyOrg')

    const unsupported = await graph('PATCH', path, { as: [home, homeAdmin], body: { web: { redirectUris: [] } } })
    assertGraphError(unsupported, 400, 'Request_BadRequest', /'web'/)

    const renamed = await graph('PATCH', `/v1.0/applications(appId='${homeAdmin}')`, {
      as: [home, homeAdmin],
      body: { displayName: 'home-admin-renamed' },
    })
    assert.equal(renamed.status, 204)
    assert.equal(emulator.state.applications.get(homeAdmin)?.displayName, 'home-admin-renamed')

    const foreignPatch = await graph('PATCH', `/v1.0/applications/${objectIdOf(homeAdmin)}`, {
      as: [foreign, foreignAdmin],
      body: { signInAudience: 'AzureADMultipleOrgs' },
    })
    assertGraphError(foreignPatch, 404, 'Request_ResourceNotFound')
  })

  it('answers unknown applications with Graph errors', async () => {
    const create = await graph('POST', '/v1.0/servicePrincipals', {
      as: [foreign, foreignAdmin],
      body: { appId: unknownAppId },
    })
    assertGraphError(create, 400, 'Request_BadRequest', /does not reference a valid application object/)

    const read = await graph('GET', `/v1.0/applications/${unknownAppId}`, { as: [home, homeAdmin] })
    assertGraphError(read, 404, 'Request_ResourceNotFound', new RegExp(`^Resource '${unknownAppId}' does not exist`))
    const byKey = await graph('GET', `/v1.0/applications(appId='${unknownAppId}')`, { as: [home, homeAdmin] })
    assertGraphError(byKey, 404, 'Request_ResourceNotFound')
    const addPassword = await graph('POST', `/v1.0/applications/${unknownAppId}/addPassword`, {
      as: [home, homeAdmin],
      body: {},
    })
    assertGraphError(addPassword, 404, 'Request_ResourceNotFound')
    const filtered = await graph(
      'GET',
      `/v1.0/applications?$filter=${encodeURIComponent(`appId eq '${unknownAppId}'`)}`,
      {
        as: [home, homeAdmin],
      },
    )
    assert.deepEqual(filtered.body.value, [])
  })

  it('refuses requests without a valid Graph token with InvalidAuthenticationToken', async () => {
    const none = await graph('GET', '/v1.0/applications')
    assertGraphError(none, 401, 'InvalidAuthenticationToken', /^Access token is empty\.$/)
    assert.ok(none.headers.get('x-ms-request-id'))

    const garbage = await graph('GET', '/v1.0/servicePrincipals', { token: 'not-a-jwt' })
    assertGraphError(garbage, 401, 'InvalidAuthenticationToken')

    const armToken = (await credential(emulator, home, homeAdmin).getToken(ARM_SCOPE)).token
    const wrongAudience = await graph('POST', '/v1.0/servicePrincipals', { token: armToken, body: { appId } })
    assertGraphError(wrongAudience, 401, 'InvalidAuthenticationToken', /Invalid audience/)
    assert.equal(emulator.state.servicePrincipals.filter((sp) => sp.appId === appId).length, 2)
  })

  it('leaves paths it does not implement to the pipeline', async () => {
    const response = await graph('GET', '/v1.0/me', { as: [home, homeAdmin] })
    assert.equal(response.status, 501)
    assert.equal(response.body.error.code, 'NotImplemented')
    const log = emulator.requestLog.entries.filter((entry) => entry.path.startsWith('/v1.0/'))
    assert.ok(log.length > 0 && log.every((entry) => entry.service === 'graph'))
  })
})
