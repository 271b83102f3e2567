import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RestError } from '@azure/core-rest-pipeline'
import { SecretClient } from '@azure/keyvault-secrets'
import type { Emulator } from '../../emulator/index.ts'
import { credential, DEMO, password, startTestEmulator } from '../helpers/emulator.ts'

describe('emulator: Key Vault secrets through @azure/keyvault-secrets', () => {
  let emulator: Emulator
  let vaultUrl: string
  let client: SecretClient
  before(async () => {
    emulator = await startTestEmulator()
    vaultUrl = emulator.vaults[DEMO.vault]!
    // The broker's own identity reads the vault; only the endpoint differs from production.
    client = new SecretClient(vaultUrl, credential(emulator, DEMO.tenantA, DEMO.brokerAppId), {
      disableChallengeResourceVerification: true,
    })
  })
  after(async () => emulator.close())

  async function rejectsWith(work: Promise<unknown>, status: number, code: string) {
    await assert.rejects(work, (err: unknown) => {
      assert.ok(err instanceof RestError, String(err))
      assert.equal(err.statusCode, status)
      assert.equal(err.code, code)
      return true
    })
  }

  it('follows the 401 challenge to a token for the vault tenant, then returns the seeded app secret', async () => {
    emulator.requestLog.clear()
    const secret = await client.getSecret(DEMO.deployerSecretName)
    assert.equal(secret.value, password(emulator, DEMO.deployerAppId))
    assert.equal(secret.properties.vaultUrl, vaultUrl)
    assert.match(secret.properties.version ?? '', /^[0-9a-f]{32}$/)
    const vaultCalls = emulator.requestLog.entries.filter((entry) => entry.service === 'keyvault')
    assert.deepEqual(
      vaultCalls.map((entry) => [entry.status, entry.authorization]),
      [
        [401, false],
        [200, true],
      ],
    )
    const login = emulator.requestLog.entries.find((entry) => entry.service === 'login' && entry.method === 'POST')
    assert.equal(login?.path, `/${DEMO.tenantA}/oauth2/v2.0/token`)
    assert.equal(emulator.state.counters.secretReads.get(`${DEMO.vault}/${DEMO.deployerSecretName}`), 1)
  })

  it('the secret it holds is a working credential (what the broker relies on)', async () => {
    const { value } = await client.getSecret(DEMO.deployerSecretName)
    const token = await credential(emulator, DEMO.tenantB, DEMO.deployerAppId, value).getToken(
      'https://management.azure.com/.default',
    )
    assert.ok(token.token)
  })

  it('keeps versions: set moves "latest", old versions stay readable and listed', async () => {
    const first = await client.setSecret('rotating', 'one')
    const second = await client.setSecret('rotating', 'two', { contentType: 'text/plain', tags: { owner: 'sre' } })
    assert.notEqual(first.properties.version, second.properties.version)
    assert.equal((await client.getSecret('rotating')).value, 'two')
    assert.equal((await client.getSecret('rotating', { version: first.properties.version! })).value, 'one')
    const versions = []
    for await (const properties of client.listPropertiesOfSecretVersions('rotating')) versions.push(properties.version)
    assert.deepEqual(versions.sort(), [first.properties.version, second.properties.version].sort())
    const latest = await client.getSecret('rotating')
    assert.equal(latest.properties.contentType, 'text/plain')
    assert.deepEqual(latest.properties.tags, { owner: 'sre' })
  })

  it('answers SecretNotFound for a missing secret or version', async () => {
    await rejectsWith(client.getSecret('no-such-secret'), 404, 'SecretNotFound')
    await rejectsWith(client.getSecret(DEMO.deployerSecretName, { version: '0'.repeat(32) }), 404, 'SecretNotFound')
  })

  it('refuses disabled and expired secrets', async () => {
    await client.setSecret('disabled-one', 'x', { enabled: false })
    await rejectsWith(client.getSecret('disabled-one'), 403, 'Forbidden')
    await client.setSecret('expired-one', 'x', { expiresOn: new Date(Date.now() - 60_000) })
    await rejectsWith(client.getSecret('expired-one'), 403, 'Forbidden')
  })

  it('refuses a caller without rights on the vault (403) and a token for another tenant (401)', async () => {
    const deployerInA = new SecretClient(vaultUrl, credential(emulator, DEMO.tenantA, DEMO.deployerAppId), {
      disableChallengeResourceVerification: true,
    })
    await rejectsWith(deployerInA.getSecret(DEMO.deployerSecretName), 403, 'Forbidden')

    const tokenFromB = (
      await credential(emulator, DEMO.tenantB, DEMO.deployerAppId).getToken('https://vault.azure.net/.default')
    ).token
    const response = await fetch(`${vaultUrl}/secrets/${DEMO.deployerSecretName}?api-version=7.5`, {
      headers: { authorization: `Bearer ${tokenFromB}` },
    })
    assert.equal(response.status, 401)
    assert.match(
      response.headers.get('www-authenticate') ?? '',
      new RegExp(`authorization="${emulator.url}/${DEMO.tenantA}", resource="https://vault.azure.net"`),
    )
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /AKV10032/)
  })

  it('answers the raw challenge, bad api-versions and unimplemented paths in Key Vault shapes', async () => {
    const challenge = await fetch(`${vaultUrl}/secrets/${DEMO.deployerSecretName}/?api-version=7.5`)
    assert.equal(challenge.status, 401)
    assert.deepEqual(await challenge.json(), {
      error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
    })
    assert.ok(challenge.headers.get('x-ms-request-id'))
    const noVersion = await fetch(`${vaultUrl}/secrets/${DEMO.deployerSecretName}`)
    assert.equal(noVersion.status, 400)
    assert.equal(((await noVersion.json()) as { error: { code: string } }).error.code, 'BadParameter')
    const keys = await fetch(`${vaultUrl}/keys/k?api-version=7.5`, {
      headers: {
        authorization: `Bearer ${(await credential(emulator, DEMO.tenantA, DEMO.brokerAppId).getToken('https://vault.azure.net/.default')).token}`,
      },
    })
    assert.equal(keys.status, 501)
    assert.equal(((await keys.json()) as { error: { code: string } }).error.code, 'NotImplemented')
  })
})
