// `npm run test:azcli`: the seed tutorial's cross-tenant flow, run by Debian's azure-cli (an
// independent client, MSAL Python) against the emulator. Needs root for a private mount namespace:
// MSAL Python skips instance discovery only for *.b2clogin.com hosts, so emulator.b2clogin.com is
// made to resolve to 127.0.0.1 inside `unshare -m` without touching the machine's /etc/hosts.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Emulator } from '../../emulator/index.ts'
import { parseSeed } from '../../emulator/seed.ts'
import { password, startTestEmulator } from '../helpers/emulator.ts'

const execFileAsync = promisify(execFile)

const A = '0a0a0a0a-0000-4000-8000-00000000000a'
const B = '0b0b0b0b-0000-4000-8000-00000000000b'
const SUB_A = '1a1a1a1a-0000-4000-8000-0000000000a1'
const SUB_B = '1b1b1b1b-0000-4000-8000-0000000000b1'
const APP = '2c2c2c2c-0000-4000-8000-0000000000c2'
const ADMIN_A = '3a3a3a3a-0000-4000-8000-0000000000a3'
const NM_ID = `/subscriptions/${SUB_A}/resourceGroups/rg-ipam/providers/Microsoft.Network/networkManagers/nm`
const POOL_ID = `${NM_ID}/ipamPools/pool-b`

const seed = parseSeed({
  tenants: [
    {
      id: A,
      displayName: 'management',
      subscriptions: [
        { id: SUB_A, displayName: 'ipam', resourceGroups: [{ name: 'rg-ipam', location: 'westeurope' }] },
      ],
    },
    {
      id: B,
      displayName: 'managed',
      subscriptions: [
        { id: SUB_B, displayName: 'spoke', resourceGroups: [{ name: 'rg-spoke', location: 'westeurope' }] },
      ],
    },
  ],
  applications: [
    // Single-tenant at first: the flow itself makes it multi-tenant and creates its stub principal in A.
    { appId: APP, displayName: 'tutorial-deployer', homeTenantId: B, signInAudience: 'AzureADMyOrg', passwords: 1 },
    { appId: ADMIN_A, displayName: 'tenant-a-admin', homeTenantId: A, signInAudience: 'AzureADMyOrg', passwords: 1 },
  ],
  roleAssignments: [
    { scope: `/subscriptions/${SUB_B}`, role: 'Network Contributor', appId: APP, tenantId: B },
    { scope: `/subscriptions/${SUB_A}`, role: 'Owner', appId: ADMIN_A, tenantId: A },
  ],
  networkManagers: [
    {
      subscriptionId: SUB_A,
      resourceGroup: 'rg-ipam',
      name: 'nm',
      location: 'westeurope',
      pools: [
        { name: 'pool-root', addressPrefixes: ['10.0.0.0/8'] },
        { name: 'pool-b', addressPrefixes: ['10.16.0.0/16'], parentPoolName: 'pool-root' },
      ],
      scopeConnections: [{ name: 'sc-b', subscriptionId: SUB_B }],
    },
  ],
  networkManagerConnections: [{ subscriptionId: SUB_B, name: 'nmc', networkManagerId: NM_ID }],
})

describe('the seed tutorial with the Azure CLI against the emulator', () => {
  let emulator: Emulator
  let dir: string
  let env: NodeJS.ProcessEnv

  // Asynchronous: the emulator answers from this very process, so a blocking spawn would deadlock.
  async function az(...args: string[]): Promise<string> {
    const shown = args.map((arg) =>
      arg.startsWith('--password=')
        ? '--password=[redacted]'
        : arg.startsWith('x-ms-authorization')
          ? '[redacted]'
          : arg,
    )
    try {
      const { stdout } = await execFileAsync(
        'unshare',
        ['-m', 'sh', '-c', 'mount --bind "$EMULATOR_HOSTS" /etc/hosts && exec az "$@"', 'az', ...args],
        { env, encoding: 'utf8', timeout: 120_000 },
      )
      return stdout.trim()
    } catch (err) {
      const { stderr = '', stdout = '' } = err as { stderr?: string; stdout?: string }
      // The child-process error's message holds the whole command line: secrets out of it first.
      for (const [i, arg] of args.entries()) {
        if (shown[i] !== arg) (err as Error).message = (err as Error).message.replaceAll(arg, shown[i]!)
      }
      throw new Error(`az ${shown.join(' ')} failed:\n${stderr}${stdout}`, { cause: err })
    }
  }

  before(async () => {
    emulator = await startTestEmulator(seed)
    const port = new URL(emulator.url).port
    const base = `https://emulator.b2clogin.com:${port}`
    dir = await mkdtemp(path.join(tmpdir(), 'azcli-'))
    await writeFile(
      path.join(dir, 'hosts'),
      `${await readFile('/etc/hosts', 'utf8')}\n127.0.0.1 emulator.b2clogin.com\n`,
    )
    await writeFile(
      path.join(dir, 'cloud.json'),
      JSON.stringify({
        endpoints: {
          resourceManager: `${base}/`,
          activeDirectory: base,
          activeDirectoryResourceId: 'https://management.core.windows.net/',
          activeDirectoryGraphResourceId: `${base}/`,
          microsoftGraphResourceId: `${base}/`,
        },
      }),
    )
    env = {
      PATH: process.env['PATH'],
      HOME: dir,
      AZURE_CONFIG_DIR: path.join(dir, 'config'),
      REQUESTS_CA_BUNDLE: emulator.caFile,
      EMULATOR_HOSTS: path.join(dir, 'hosts'),
      AZURE_CORE_COLLECT_TELEMETRY: 'false',
      AZURE_CORE_NO_COLOR: 'true',
    }
    await az('cloud', 'register', '--name', 'emulator', '--cloud-config', `@${path.join(dir, 'cloud.json')}`)
    await az('cloud', 'set', '--name', 'emulator')
  })
  after(async () => {
    await emulator?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('makes the app multi-tenant, creates its stub principal in A, grants IPAM Pool User, and deploys a VNet in B from A', async () => {
    const appSecret = password(emulator, APP)
    const adminSecret = password(emulator, ADMIN_A)

    await az('login', '--service-principal', '--username', APP, `--password=${appSecret}`, '--tenant', B)
    await az('ad', 'app', 'update', '--id', APP, '--set', 'signInAudience=AzureADMultipleOrgs')
    assert.equal(emulator.state.applications.get(APP)?.signInAudience, 'AzureADMultipleOrgs')

    await az('login', '--service-principal', '--username', ADMIN_A, `--password=${adminSecret}`, '--tenant', A)
    await az('ad', 'sp', 'create', '--id', APP)
    const stub = emulator.state.servicePrincipal(APP, A)
    assert.ok(stub, 'the stub service principal exists in tenant A')
    // Debian's azure-cli 2.45 ships an azure-mgmt-authorization its `az role assignment create` cannot
    // drive ('RoleAssignmentsOperations' object has no attribute 'config'), so the same ARM calls are
    // made with az rest: look the role up by name, then PUT the assignment for the stub principal.
    const principalId = await az('ad', 'sp', 'show', '--id', APP, '--query', 'id', '-o', 'tsv')
    const roleId = await az(
      'rest',
      '--method',
      'get',
      '--uri',
      `${POOL_ID}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'IPAM Pool User'&api-version=2022-04-01`,
      '--query',
      'value[0].id',
      '-o',
      'tsv',
    )
    await az(
      'rest',
      '--method',
      'put',
      '--uri',
      `${POOL_ID}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`,
      '--body',
      JSON.stringify({ properties: { roleDefinitionId: roleId, principalId, principalType: 'ServicePrincipal' } }),
    )
    assert.ok(
      emulator.state.rbac.isAllowed(
        stub.objectId,
        'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action',
        POOL_ID,
      ),
    )

    await az('login', '--service-principal', '--username', APP, `--password=${appSecret}`, '--tenant', B)
    const auxiliary = await az(
      'account',
      'get-access-token',
      '--resource',
      'https://management.azure.com/',
      '--tenant',
      A,
      '--query',
      'accessToken',
      '-o',
      'tsv',
    )
    const vnet = `/subscriptions/${SUB_B}/resourceGroups/rg-spoke/providers/Microsoft.Network/virtualNetworks/vnet-tutorial`
    const body = JSON.stringify({
      location: 'westeurope',
      properties: {
        addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '256', pool: { id: POOL_ID } }] },
      },
    })
    await az(
      'rest',
      '--method',
      'put',
      '--uri',
      `${vnet}?api-version=2024-05-01`,
      '--headers',
      `x-ms-authorization-auxiliary=Bearer ${auxiliary}`,
      '--body',
      body,
    )
    // `az network vnet show` of Debian's package fails loading its own arguments against the
    // azure-mgmt-network it ships ('NoneType' object has no attribute 'standard_medium'); same GET via az rest.
    const prefixes = await az(
      'rest',
      '--method',
      'get',
      '--uri',
      `${vnet}?api-version=2024-05-01`,
      '--query',
      'properties.addressSpace.addressPrefixes',
      '-o',
      'tsv',
    )
    assert.equal(prefixes, '10.16.0.0/24')
  })
})
