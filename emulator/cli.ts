// `npm run emulator -- [--port <n>] [--seed <file>] [--tls-dir <dir>] [--snapshot <file>]`: runs the emulator on its own
// and, once it is ready, prints one JSON line: { url, caFile, vaults, tenants }.
import { parseArgs } from 'node:util'
import { DEFAULT_TLS_DIR, DEMO_SEED, startEmulator } from './index.ts'
import { readSeed } from './seed.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env['EMULATOR_PORT'] ?? '0' },
    seed: { type: 'string', default: process.env['EMULATOR_SEED'] ?? DEMO_SEED },
    'tls-dir': { type: 'string', default: process.env['EMULATOR_TLS_DIR'] ?? DEFAULT_TLS_DIR },
    snapshot: { type: 'string', default: process.env['EMULATOR_SNAPSHOT'] },
  },
})

const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be an integer between 0 and 65535 (got ${values.port})\n`)
  process.exit(2)
}
const emulator = await startEmulator({
  seed: await readSeed(values.seed),
  port,
  tlsDir: values['tls-dir'],
  ...(values.snapshot && { snapshotFile: values.snapshot }),
})
process.stdout.write(
  `${JSON.stringify({
    url: emulator.url,
    caFile: emulator.caFile,
    vaults: emulator.vaults,
    tenants: [...emulator.state.tenants.values()],
  })}\n`,
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void emulator.close().then(() => process.exit(0)))
}
