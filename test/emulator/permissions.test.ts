import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { AuthorizationManagementClient, type Permission } from '@azure/arm-authorization'
import { isRestError } from '@azure/core-rest-pipeline'
import type { Emulator } from '../../emulator/index.ts'
import { credential, DEMO, startTestEmulator } from '../helpers/emulator.ts'

const ARM = 'https://management.azure.com/.default'
const API = 'api-version=2022-04-01'
// Network Contributor (4d97b98b-1d4f-4787-a291-c67834d212e7) as Microsoft's built-in roles reference lists it.
const NETWORK_CONTRIBUTOR: Permission = {
  actions: [
    'Microsoft.Authorization/*/read',
    'Microsoft.Insights/alertRules/*',
    'Microsoft.Network/*',
    'Microsoft.ResourceHealth/availabilityStatuses/read',
    'Microsoft.Resources/deployments/*',
    'Microsoft.Resources/subscriptions/resourceGroups/read',
    'Microsoft.Support/*',
  ],
  notActions: [],
  dataActions: [],
  notDataActions: [],
}
const ASSOCIATE = 'Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action'

describe('emulator: ARM Permissions - List For Resource Group / List For Resource', () => {
  let emulator: Emulator

  before(async () => {
    emulator = await startTestEmulator()
  })
  after(async () => emulator.close())

  const client = (tenant: string, app: string, subscription: string) =>
    new AuthorizationManagementClient(credential(emulator, tenant, app), subscription, {
      endpoint: emulator.url,
      credentialScopes: [ARM],
    })

  async function all(pages: AsyncIterable<Permission>): Promise<Permission[]> {
    const listed: Permission[] = []
    for await (const permission of pages) listed.push(permission)
    return listed
  }

  async function get(path: string, tenant: string, app: string, method = 'GET') {
    const { token } = await credential(emulator, tenant, app).getToken(ARM)
    const response = await fetch(`${emulator.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
    return {
      status: response.status,
      body: (await response.json()) as { value?: Permission[]; nextLink?: null; error?: { code: string } },
    }
  }

  it('lists the Network Contributor actions a resource group inherits from the subscription', async () => {
    const deployerB = client(DEMO.tenantB, DEMO.deployerAppId, DEMO.subscriptionB)
    const listed = await all(deployerB.permissions.listForResourceGroup(DEMO.resourceGroupB))
    assert.deepEqual(listed, [NETWORK_CONTRIBUTOR])
    // An empty parentResourcePath, for a resource that need not exist: still inherited from above.
    const vnet = await all(
      deployerB.permissions.listForResource(DEMO.resourceGroupB, 'Microsoft.Network', '', 'virtualNetworks', 'vnet-x'),
    )
    assert.deepEqual(vnet, [NETWORK_CONTRIBUTOR])
  })

  it('lists a role assigned on one IPAM pool for that pool only', async () => {
    const deployerA = client(DEMO.tenantA, DEMO.deployerAppId, DEMO.subscriptionA)
    const pool = (name: string) =>
      all(
        deployerA.permissions.listForResource(
          DEMO.resourceGroupA,
          'Microsoft.Network',
          'networkManagers/nm-contoso',
          'ipamPools',
          name,
        ),
      )
    const retail = await pool('pool-retail')
    assert.equal(retail.length, 1)
    assert.ok(retail[0]?.actions?.includes(ASSOCIATE))
    assert.deepEqual(retail[0]?.notActions, [])
    assert.deepEqual(await pool('pool-root'), [])
  })

  it('answers the raw shape, with case-insensitive segments, at subscription, group and resource scope', async () => {
    const rg = `/subscriptions/${DEMO.subscriptionB}/resourceGroups/${DEMO.resourceGroupB}`
    const atGroup = await get(
      `${rg}/providers/Microsoft.Authorization/permissions?${API}`,
      DEMO.tenantB,
      DEMO.deployerAppId,
    )
    assert.equal(atGroup.status, 200)
    assert.deepEqual(atGroup.body, { value: [NETWORK_CONTRIBUTOR], nextLink: null })

    const shouting = `/subscriptions/${DEMO.subscriptionB.toUpperCase()}/RESOURCEGROUPS/${DEMO.resourceGroupB.toUpperCase()}/providers/microsoft.network/virtualnetworks/vnet-x/PROVIDERS/microsoft.authorization/PERMISSIONS?${API}`
    assert.deepEqual((await get(shouting, DEMO.tenantB, DEMO.deployerAppId)).body.value, [NETWORK_CONTRIBUTOR])

    const atSubscription = await get(
      `/subscriptions/${DEMO.subscriptionB}/providers/Microsoft.Authorization/permissions?${API}`,
      DEMO.tenantB,
      DEMO.deployerAppId,
    )
    assert.deepEqual(atSubscription.body.value, [NETWORK_CONTRIBUTOR])

    // Pool-level roles do not reach up to the resource group.
    const groupA = await get(
      `/subscriptions/${DEMO.subscriptionA}/resourcegroups/${DEMO.resourceGroupA}/providers/Microsoft.Authorization/permissions?${API}`,
      DEMO.tenantA,
      DEMO.deployerAppId,
    )
    assert.equal(groupA.status, 200)
    assert.deepEqual(groupA.body.value, [])
  })

  it('needs no role: a caller without assignments gets an empty list', async () => {
    const res = await get(
      `/subscriptions/${DEMO.subscriptionA}/resourceGroups/${DEMO.resourceGroupA}/providers/Microsoft.Authorization/permissions?${API}`,
      DEMO.tenantA,
      DEMO.requesterAppId,
    )
    assert.equal(res.status, 200)
    assert.deepEqual(res.body.value, [])
  })

  it('refuses an unknown resource group, and methods other than GET', async () => {
    const deployerB = client(DEMO.tenantB, DEMO.deployerAppId, DEMO.subscriptionB)
    await assert.rejects(
      all(deployerB.permissions.listForResourceGroup('rg-nope')),
      (err: unknown) => isRestError(err) && err.statusCode === 404 && err.code === 'ResourceGroupNotFound',
    )
    const post = await get(
      `/subscriptions/${DEMO.subscriptionB}/resourceGroups/${DEMO.resourceGroupB}/providers/Microsoft.Authorization/permissions?${API}`,
      DEMO.tenantB,
      DEMO.deployerAppId,
      'POST',
    )
    assert.equal(post.status, 405)
  })

  it("refuses a token from another tenant than the subscription's (InvalidAuthenticationTokenTenant)", async () => {
    const wrongTenant = client(DEMO.tenantB, DEMO.deployerAppId, DEMO.subscriptionA)
    await assert.rejects(
      all(wrongTenant.permissions.listForResourceGroup(DEMO.resourceGroupA)),
      (err: unknown) => isRestError(err) && err.statusCode === 401 && err.code === 'InvalidAuthenticationTokenTenant',
    )
  })
})
