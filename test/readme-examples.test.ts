import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ConfigSchema } from '../src/config.ts'
import { scratchDatabase } from './helpers/database.ts'
import {
  cleanEnv,
  freePort,
  httpStatus,
  PROJECT_ROOT,
  type RunningServer,
  spawnServer,
  waitFor,
} from './helpers/process.ts'

// Issue 7: every curl example in the README works, as written, against the broker as `npm start` runs
// it. The README is the one source: the `sh` blocks between its examples markers run here, in order,
// each in bash with `set -euo pipefail`; the variables a block sets (BASE, OP, VNET…) reach the next.

export interface Example {
  /** The block's leading `#` comment, saying what it shows. */
  title: string
  script: string
}

const REGION = /<!-- examples:start -->([\s\S]*?)<!-- examples:end -->/
const SH_BLOCK = /^```sh\n([\s\S]*?)^```$/gm
const CODE_BLOCK = /^```[^\n]*\n([\s\S]*?)^```$/gm

export function readmeExamples(readme: string): Example[] {
  const region = REGION.exec(readme)?.[1]
  assert.ok(region, 'README.md has the <!-- examples:start --> … <!-- examples:end --> markers')
  return [...region.matchAll(SH_BLOCK)].map(([, script = '']) => {
    const comment = /^(?:#.*\n)*/.exec(script)![0]
    return { title: comment.replace(/^#\s*/gm, '').replaceAll('\n', ' ').trim(), script }
  })
}

/** Each curl command of a script, its continuation lines joined. */
function curlCommands(script: string): string[] {
  return script
    .replaceAll('\\\n', ' ')
    .split('\n')
    .flatMap((line) => line.match(/\bcurl\b[^|)]*/g) ?? [])
}

/** The JSON body and path of the README's VNet deployment (POST $BASE/v1/vnets). */
function readmeDeployment(examples: Example[]): { path: string; body: unknown } {
  for (const { script } of examples) {
    const request = /curl[^\n]*-X POST "\$BASE(\/v1\/vnets)[?"][\s\S]*?-d '([^']*)'/.exec(script)
    if (request) return { path: request[1]!, body: JSON.parse(request[2]!) }
  }
  assert.fail('no README example deploys a VNet with POST $BASE/v1/vnets')
}

const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8')
const examples = readmeExamples(readme)

describe('README examples, as written', () => {
  it('are sh blocks that each start with a comment saying what they show', () => {
    assert.ok(examples.length >= 5, `found ${examples.length} examples`)
    for (const example of examples) assert.match(example.script, /^# \S/, example.script)
  })

  it('use curl so that an error status fails (-f or --fail-with-body)', () => {
    const commands = examples.flatMap((example) => curlCommands(example.script))
    assert.ok(commands.length >= examples.length)
    for (const command of commands) assert.match(command, /\s(--fail-with-body|--fail|-[a-zA-Z]*f[a-zA-Z]*)\s/, command)
  })

  it('are the only curl examples in the README, so every one of them is run below', () => {
    const outside = readme.replace(REGION, '')
    const blocks = [...outside.matchAll(CODE_BLOCK)].map(([, code = '']) => code)
    assert.deepEqual(
      blocks.filter((code) => /\bcurl\b/.test(code)),
      [],
    )
  })

  it('default to the address npm start listens on', () => {
    const { HOST, PORT } = ConfigSchema.properties as unknown as Record<'HOST' | 'PORT', { default: string | number }>
    assert.match(
      examples[0]!.script,
      new RegExp(`BASE=\\$\\{BASE:-http://${String(HOST.default)}:${String(PORT.default)}\\}`),
    )
  })
})

describe('README examples against the broker started as npm start starts it', () => {
  let workDir: string
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>
  let server: RunningServer
  let env: NodeJS.ProcessEnv
  let banner: { url: string; body: string }

  before(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'ipam-broker-readme-'))
    await chmod(workDir, 0o700)
    // Its own database and emulated Azure, so the demo topology starts from its seed and the ledger is empty.
    scratch = await scratchDatabase({ migrate: false })
    const port = await freePort()
    env = cleanEnv({
      PORT: String(port),
      DATABASE_URL: scratch.url,
      EMULATOR_STATE_FILE: path.join(workDir, 'emulator', 'state.json'),
      EMBEDDED_POSTGRES_DIR: path.join(workDir, 'not-used'),
    })
    server = spawnServer('node', env)
    let exited = false
    void server.exited.then(() => (exited = true))
    const baseUrl = `http://127.0.0.1:${port}`
    try {
      await waitFor(
        'GET /readyz to answer 200',
        async () => {
          if (exited) throw new Error('the broker exited before it was ready')
          return (await httpStatus(`${baseUrl}/readyz`)) === 200 ? true : undefined
        },
        90_000,
      )
      banner = await waitFor(
        'the demo banner',
        () => {
          const printed = /curl -sS -X POST '([^']*)'.* -d '(\{.*\})'/.exec(server.output())
          return printed ? { url: printed[1]!, body: printed[2]! } : undefined
        },
        10_000,
      )
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${server.output()}`, { cause: err })
    }
    env = { ...env, BASE: baseUrl, EXAMPLES_STATE: path.join(workDir, 'examples-state.sh') }
  })

  after(async () => {
    server?.child.kill('SIGTERM')
    await server?.exited
    await scratch?.drop()
    await rm(workDir, { recursive: true, force: true })
  })

  it("npm start's banner prints the README's deployment", () => {
    const deployment = readmeDeployment(examples)
    assert.equal(new URL(banner.url).pathname, deployment.path)
    assert.deepEqual(JSON.parse(banner.body), deployment.body)
  })

  let failed: string | undefined
  for (const [i, example] of examples.entries()) {
    it(`example ${i + 1}: ${example.title}`, { timeout: 120_000 }, async (t) => {
      if (failed) return t.skip(`after the failed example "${failed}"`)
      const run = await runExample(example.script, env)
      if (run.code !== 0) failed = example.title
      assert.equal(
        run.code,
        0,
        `exit ${run.code ?? run.signal}\n--- script\n${example.script}--- stdout\n${run.stdout}--- stderr\n${run.stderr}`,
      )
      t.diagnostic(run.stdout.trimEnd())
    })
  }
})

/**
 * Runs one block in bash from the repository root (where `npm run token` works). Variables it assigns are
 * exported (`set -a`) and written to EXAMPLES_STATE, which the next block reads first.
 */
function runExample(
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const wrapped = [
    'set -euo pipefail',
    'if [ -f "$EXAMPLES_STATE" ]; then . "$EXAMPLES_STATE"; fi',
    'set -a',
    script,
    'set +a',
    // Read-only variables cannot be declared again by the next block.
    `export -p | grep -v '^declare -[a-zA-Z]*r' > "$EXAMPLES_STATE"`,
  ].join('\n')
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', wrapped], {
      cwd: PROJECT_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 110_000,
      killSignal: 'SIGKILL',
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}
