// Generates the Prisma client into src/db/generated (run by postinstall and `npm run db:generate`).
// The CLI insists on locating the native schema engine, which cannot be downloaded on offline
// machines; `generate` never runs it, so any existing file satisfies the check.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const cli = require.resolve('prisma/build/index.js')
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env['PRISMA_SCHEMA_ENGINE_BINARY'] ?? cli,
  CHECKPOINT_DISABLE: '1',
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
}
const { status } = spawnSync(process.execPath, [cli, 'generate', '--no-hints'], { stdio: 'inherit', env })
process.exit(status ?? 1)
