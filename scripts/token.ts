// `npm run token -- --role <Requester|Reader|Admin>`: a fresh access token for the broker's API from
// the demo topology of a running `npm start` (AZURE_CLOUD=emulator), as the demo app holding that
// role. What it did goes to stderr; the token alone is the last line on stdout, for $(...).
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { ClientSecretCredential } from '@azure/identity'
import { trustCa } from '../emulator/common/tls.ts'
import { DEMO_CALLERS, DEMO_IDS, type DemoRole, endpointFile } from '../emulator/demo-broker.ts'
import { loadSnapshot } from '../emulator/snapshot.ts'
import { loadConfig } from '../src/config.ts'

const { values } = parseArgs({ options: { role: { type: 'string', default: 'Requester' } } })
const role = values.role as DemoRole
if (!(role in DEMO_CALLERS)) {
  process.stderr.write(`--role must be one of ${Object.keys(DEMO_CALLERS).join(', ')} (got ${values.role})\n`)
  process.exit(2)
}
const config = loadConfig()
let endpoint: { url: string; caFile: string }
try {
  endpoint = JSON.parse(await readFile(endpointFile(config.EMULATOR_STATE_FILE), 'utf8')) as typeof endpoint
} catch {
  process.stderr.write(
    `No demo emulator found (${endpointFile(config.EMULATOR_STATE_FILE)}): start the broker with npm start first.\n`,
  )
  process.exit(1)
}
const state = await loadSnapshot(config.EMULATOR_STATE_FILE)
const appId = DEMO_CALLERS[role]
const secret = state?.applications.get(appId)?.passwords[0]?.secretText
if (!secret) {
  process.stderr.write(`The demo state has no credential for the ${role} app ${appId}.\n`)
  process.exit(1)
}
trustCa(await readFile(endpoint.caFile, 'utf8'))
const credential = new ClientSecretCredential(DEMO_IDS.tenantA, appId, secret, {
  authorityHost: endpoint.url,
  disableInstanceDiscovery: true,
})
try {
  const token = await credential.getToken('api://ipam-broker/.default')
  process.stderr.write(
    `${role} token from ${endpoint.url}, valid until ${new Date(token.expiresOnTimestamp).toISOString()}\n`,
  )
  process.stdout.write(`${token.token}\n`)
} catch (err) {
  process.stderr.write(
    `The demo emulator at ${endpoint.url} did not answer (${(err as Error).message.split('\n')[0]}); is npm start running?\n`,
  )
  process.exit(1)
}
