import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { applySeed, parseSeed, SeedError } from '../../emulator/seed.ts'
import { DEMO, demoSeed } from '../helpers/emulator.ts'
import { PROJECT_ROOT } from '../helpers/process.ts'

describe('emulator: seeds', () => {
  it('the demo seed builds tenants A, B and C, a multi-tenant deployer with stub principals, and its vault', async () => {
    const state = applySeed(await demoSeed())
    assert.deepEqual([...state.tenants.keys()], [DEMO.tenantA, DEMO.tenantB, DEMO.tenantC])
    const deployer = state.applications.get(DEMO.deployerAppId)
    assert.equal(deployer?.signInAudience, 'AzureADMultipleOrgs')
    for (const tenant of [DEMO.tenantA, DEMO.tenantB, DEMO.tenantC])
      assert.ok(state.servicePrincipal(DEMO.deployerAppId, tenant))
    const stored = state.vaults.get(DEMO.vault)?.secrets.get(DEMO.deployerSecretName)?.at(-1)?.value
    assert.equal(stored, deployer?.passwords[0]?.secretText)
  })

  it('generates application secrets at start: no two starts share one', async () => {
    const seed = await demoSeed()
    const first = applySeed(seed).applications.get(DEMO.deployerAppId)?.passwords[0]?.secretText
    const second = applySeed(seed).applications.get(DEMO.deployerAppId)?.passwords[0]?.secretText
    assert.ok(first && second && first !== second)
    assert.equal(first.length, 40)
  })

  it('refuses malformed seeds and dangling references with the path at fault', async () => {
    assert.throws(() => parseSeed({ tenants: [{ id: 'not-a-guid', displayName: 'x' }] }), /\/tenants\/0\/id/)
    assert.throws(() => parseSeed({ tenants: [], extra: true }), SeedError)
    const seed = parseSeed({
      tenants: [{ id: '11111111-0000-4000-8000-000000000001', displayName: 't' }],
      servicePrincipals: [
        { appId: '22222222-0000-4000-8000-000000000002', tenantId: '11111111-0000-4000-8000-000000000001' },
      ],
    })
    assert.throws(() => applySeed(seed), /unknown application 22222222/)
  })

  it('npm run emulator prints one JSON line with url and caFile once it serves', async () => {
    const child = spawn('npm', ['run', '--silent', 'emulator', '--', '--port', '0'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const [chunk] = (await once(child.stdout, 'data')) as [Buffer]
      const ready = JSON.parse(chunk.toString().split('\n')[0]!) as {
        url: string
        caFile: string
        vaults: Record<string, string>
      }
      assert.match(ready.url, /^https:\/\/localhost:\d+$/)
      assert.match(ready.caFile, /ca\.pem$/)
      assert.ok(ready.vaults[DEMO.vault])
    } finally {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
})
