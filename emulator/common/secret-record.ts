import { appendFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'

// A test aid. With IPAM_TEST_RUN_DIR set (test/global-setup.ts sets it for `npm test` and the processes
// the tests start), every credential the emulator creates or issues is appended to that run's secrets
// folder, so that the run's teardown can show none of them reached a log or the database
// (test/helpers/leak-scan.ts). Unset, as in `npm start` or `npm run emulator`, nothing is written.

export type SecretKind =
  | 'access-token'
  | 'app-password'
  | 'vault-secret'
  | 'database-password'
  /** A token a test signs itself (a forger's key, alg none): never issued by the emulator. */
  | 'forged-token'

export const RUN_DIR_VARIABLE = 'IPAM_TEST_RUN_DIR'

export function recordSecret(kind: SecretKind, value: string): void {
  const runDir = process.env[RUN_DIR_VARIABLE]
  if (!runDir || !value) return
  const dir = path.join(runDir, 'secrets')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  // Synchronous, so that a process killed right after still leaves its record; one file per process.
  appendFileSync(path.join(dir, `${process.pid}.jsonl`), `${JSON.stringify({ kind, value })}\n`, { mode: 0o600 })
}
