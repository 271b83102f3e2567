import closeWithGrace from 'close-with-grace'
import { buildApp, type App } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { createPrismaClient, type PrismaClient } from './db/client.ts'
import { RowStreamer } from './db/row-stream.ts'
import { type Database, openDatabase } from './db/index.ts'
import { JobQueue } from './db/job-queue.ts'
import { migrationNames } from './db/migrate.ts'
import { createLogger } from './logger.ts'
import { type AzureConnection, connectAzure } from './ms-auth/azure-connection.ts'

// The process: configuration, logger, database, listen, and a graceful stop on SIGTERM/SIGINT
// (stop accepting, let in-flight requests finish, close the pool, stop embedded Postgres, exit 0).

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  createLogger('info').fatal(err.message)
  process.exit(1)
}

const log = createLogger(config.LOG_LEVEL)
let database: Database | undefined
let prisma: PrismaClient | undefined
let app: App | undefined
let azure: AzureConnection | undefined
let queue: JobQueue | undefined
let streams: RowStreamer | undefined

// Registered before anything starts, so a signal during start-up also stops what has started.
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'stopping after an unexpected error')
  else log.info({ signal }, 'stopping: finishing in-flight requests')
  try {
    await app?.close()
    // Running operations get the rest of the grace period; one cut short is resumed by another process.
    await queue?.stop(config.SHUTDOWN_GRACE_MS)
  } finally {
    await streams?.close()
    await prisma?.$disconnect()
    await azure?.close()
    await database?.close()
  }
  log.info('stopped')
})

try {
  database = await openDatabase(config, log)
  prisma = createPrismaClient({ connectionString: database.connectionString, poolMax: config.DB_POOL_MAX, log })
  streams = new RowStreamer({
    connectionString: database.connectionString,
    maxStreams: config.EXPORT_CONCURRENCY,
    log,
  })
  azure = await connectAzure(config, log)
  queue = await JobQueue.start({
    connectionString: database.connectionString,
    schema: config.JOB_QUEUE_SCHEMA,
    log,
    retryLimit: config.OPERATION_RETRY_LIMIT,
  })
  app = await buildApp({
    logger: log,
    prisma,
    migrations: await migrationNames(),
    streams,
    http: {
      bodyLimitBytes: config.BODY_LIMIT_BYTES,
      maxHeaderBytes: config.MAX_HEADER_BYTES,
      rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
      corsOrigins: config.CORS_ORIGINS?.split(',') ?? [],
    },
    azure: {
      endpoints: azure.endpoints,
      keyVaultCredential: azure.keyVaultCredential,
      authenticator: azure.authenticator,
      queue,
      secretCacheSeconds: config.SECRET_CACHE_SECONDS,
      waitMaxSeconds: config.WAIT_MAX_SECONDS,
      workerConcurrency: config.WORKER_CONCURRENCY,
      subscriptionConcurrency: config.SUBSCRIPTION_CONCURRENCY,
    },
  })
  // The demo tenants are registered before the port opens, so the first request finds them.
  if (azure.demo) await azure.demo.register(app)
  const address = await app.listen({ host: config.HOST, port: config.PORT })
  log.info(
    { url: address, database: database.embedded ? 'embedded' : 'DATABASE_URL', azure: config.AZURE_CLOUD },
    `ipam-broker is listening on ${address} — try: curl ${address}/readyz`,
  )
  if (azure.demo) await announceDemo(azure.demo, address)
} catch (err) {
  if (err instanceof ConfigError) {
    log.fatal(err.message)
    await shutdownAfterFailedStart()
  }
  log.fatal({ err }, `ipam-broker could not start: ${err instanceof Error ? err.message : String(err)}`)
  await shutdownAfterFailedStart()
}

async function shutdownAfterFailedStart(): Promise<never> {
  await app?.close().catch(() => undefined)
  await queue?.stop(1000).catch(() => undefined)
  await streams?.close().catch(() => undefined)
  await prisma?.$disconnect().catch(() => undefined)
  await azure?.close().catch(() => undefined)
  await database?.close().catch(() => undefined)
  process.exit(1)
}

/** Prints a request that works against the demo topology. */
async function announceDemo(demo: NonNullable<AzureConnection['demo']>, address: string) {
  const { management } = demo.registrations
  const token = await demo.token('Requester')
  const example = JSON.stringify({
    subscriptionId: 'b1b1b1b1-0000-4000-8000-0000000000b1',
    resourceGroup: 'rg-retail-network',
    name: 'vnet-demo-1',
    location: 'westeurope',
    ipamAllocations: [{ poolId: (management.body['poolIds'] as string[])[0], numberOfIpAddresses: '256' }],
  })
  // Written to the terminal, not the log: a token has no place in log storage.
  process.stdout.write(
    `${[
      'demo topology ready (management tenant A, managed tenants B and C, deployer app secret in Key Vault).',
      `A Requester token for the demo, valid one hour:`,
      `  export TOKEN=${token}`,
      'Deploy a VNet in tenant B from pool-retail of tenant A and wait for it:',
      `  curl -sS -X POST '${address}/v1/vnets?wait=30' -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '${example}'`,
    ].join('\n')}\n`,
  )
}
