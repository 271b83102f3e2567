import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { NetworkManagementClient } from '@azure/arm-network'
import { auxiliaryAuthenticationHeaderPolicy } from '@azure/core-rest-pipeline'
import { type Emulator, startEmulator } from '../../emulator/index.ts'
import { trustCa } from '../../emulator/common/tls.ts'
import { credential, DEMO, demoSeed, password } from '../helpers/emulator.ts'

const ARM_SCOPE = 'https://management.azure.com/.default'

describe('emulator: snapshot file', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'emulator-snapshot-'))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  const deployer = (emulator: Emulator) =>
    new NetworkManagementClient(credential(emulator, DEMO.tenantB, DEMO.deployerAppId), DEMO.subscriptionB, {
      endpoint: emulator.url,
      credentials: { scopes: [ARM_SCOPE] },
      additionalPolicies: [
        {
          policy: auxiliaryAuthenticationHeaderPolicy({
            credentials: [credential(emulator, DEMO.tenantA, DEMO.deployerAppId)],
            scopes: ARM_SCOPE,
          }),
          position: 'perRetry',
        },
      ],
    })

  const put = (emulator: Emulator, name: string) =>
    deployer(emulator).virtualNetworks.beginCreateOrUpdateAndWait(DEMO.resourceGroupB, name, {
      location: 'westeurope',
      addressSpace: { ipamPoolPrefixAllocations: [{ numberOfIpAddresses: '256', id: DEMO.poolRetail }] },
    })

  it('keeps apps, secrets, pools and VNets across a restart; allocations continue where they were', async () => {
    const snapshotFile = path.join(dir, 'state.json')
    const first = await startEmulator({ seed: await demoSeed(), snapshotFile })
    trustCa(first.ca)
    const secret = password(first, DEMO.deployerAppId)
    const vnet = await put(first, 'vnet-kept')
    await first.close()
    assert.equal((await stat(snapshotFile)).mode & 0o777, 0o600)

    const second = await startEmulator({ seed: await demoSeed(), snapshotFile })
    try {
      assert.equal(password(second, DEMO.deployerAppId), secret, 'the same generated secret, not a new seed')
      const kept = await deployer(second).virtualNetworks.get(DEMO.resourceGroupB, 'vnet-kept')
      assert.deepEqual(kept.addressSpace?.addressPrefixes, vnet.addressSpace?.addressPrefixes)
      const next = await put(second, 'vnet-next')
      assert.notDeepEqual(next.addressSpace?.addressPrefixes, vnet.addressSpace?.addressPrefixes)
      assert.deepEqual(next.addressSpace?.addressPrefixes, ['10.16.1.0/24'])
    } finally {
      await second.close()
    }
  })
})
