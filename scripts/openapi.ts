// `npm run openapi`: writes openapi/openapi.json from the route schemas. A test fails when the
// committed file differs from what the app generates.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { buildApp } from '../src/app.ts'
import { createPrismaClient } from '../src/db/client.ts'

export const OPENAPI_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../openapi/openapi.json')

/** The document as committed: generated without a database (the Prisma client connects lazily). */
export async function generateOpenApi(): Promise<string> {
  const prisma = createPrismaClient({ connectionString: 'postgresql://localhost/openapi', poolMax: 1 })
  const app = await buildApp({ logger: pino({ level: 'silent' }), prisma, migrations: [] })
  await app.ready()
  const document = JSON.stringify(app.swagger(), null, 2) + '\n'
  await app.close()
  return document
}

if (import.meta.main) {
  await writeFile(OPENAPI_FILE, await generateOpenApi())
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`)
}
