// `npm run openapi`: writes openapi/openapi.json from the route schemas, then the typed client generated
// from it (openapi/client/src/generated). Tests fail when either committed copy differs.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { buildApp } from '../src/app.ts'
import { createPrismaClient } from '../src/db/client.ts'
import { RowStreamer } from '../src/db/row-stream.ts'
import { azureEndpoints } from '../src/ms-auth/azure-cloud.ts'
import { CallerAuthenticator } from '../src/ms-auth/caller-identity.ts'
import { DefaultAzureCredential } from '@azure/identity'
import { GENERATED_DIR, generateClient } from '../openapi/client/generate.ts'

export const OPENAPI_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../openapi/openapi.json')

/** The document as committed: generated without a database (the Prisma client connects lazily). */
export async function generateOpenApi(): Promise<string> {
  const prisma = createPrismaClient({ connectionString: 'postgresql://localhost/openapi', poolMax: 1 })
  // Azure is configured but never called: clients connect lazily, and no worker runs.
  const idle = () => Promise.reject(new Error('no job queue while generating the OpenAPI document'))
  const endpoints = azureEndpoints('AzurePublicCloud')
  const app = await buildApp({
    logger: pino({ level: 'silent' }),
    prisma,
    migrations: [],
    // Pools connect lazily too.
    streams: new RowStreamer({ connectionString: 'postgresql://localhost/openapi', maxStreams: 1 }),
    azure: {
      endpoints,
      keyVaultCredential: new DefaultAzureCredential(),
      authenticator: new CallerAuthenticator({
        authorityHost: endpoints.authorityHost,
        tenantId: 'common',
        audiences: ['api://ipam-broker'],
      }),
      queue: { enqueue: idle, work: idle },
      secretCacheSeconds: 0,
      waitMaxSeconds: 0,
      workerConcurrency: 0,
      subscriptionConcurrency: 1,
    },
  })
  await app.ready()
  const document = JSON.stringify(app.swagger(), null, 2) + '\n'
  await app.close()
  return document
}

if (import.meta.main) {
  await writeFile(OPENAPI_FILE, await generateOpenApi())
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`)
  await generateClient(GENERATED_DIR, { quiet: true })
  console.log(`wrote ${path.relative(process.cwd(), GENERATED_DIR)}`)
}
