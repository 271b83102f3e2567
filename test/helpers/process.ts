import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { keepChildOutput } from './run-logs.ts'

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface RunningServer {
  child: ChildProcess
  /** Parsed JSON log lines (and raw text for anything else) written so far. */
  lines: Record<string, unknown>[]
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

// Brokers started by tests keep their emulated Azure here, never in the developer's .data folder.
const TEST_EMULATOR_STATE = path.join(tmpdir(), `ipam-broker-test-emulator-${process.pid}.json`)

/**
 * The environment a user's shell would have: none of the test run's own database settings. The run's
 * folder (IPAM_TEST_RUN_DIR) stays, so that the emulator in an `npm start` broker records what it issues.
 */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { EMULATOR_STATE_FILE: TEST_EMULATOR_STATE, ...process.env, ...extra }
  for (const name of ['DATABASE_URL', 'TEST_DATABASE_URL', 'IPAM_TEST_DATABASE_URL', 'NODE_TEST_CONTEXT']) {
    if (!(name in extra)) delete env[name]
  }
  return env
}

/** Spawns the broker (`npm start`, or node on src/server.ts) and records what it prints. */
export function spawnServer(command: 'npm' | 'node', env: NodeJS.ProcessEnv): RunningServer {
  const [file, args] =
    command === 'npm' ? ['npm', ['start', '--silent']] : [process.execPath, [path.join('src', 'server.ts')]]
  const child = spawn(file, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Record<string, unknown>[] = []
  let text = ''
  keepChildOutput(child)
  const collect = (chunk: Buffer) => {
    text += chunk.toString()
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        lines.push({ raw: line })
      }
    }
  }
  child.stdout.on('data', collect)
  child.stderr.on('data', collect)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  return { child, lines, output: () => text, exited }
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function httpStatus(url: string): Promise<number | undefined> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5000) })).status
  } catch {
    return undefined
  }
}
