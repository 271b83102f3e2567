// `npm run db:new-migration -- <name>`: writes prisma/migrations/<timestamp>_<name>/migration.sql with
// the SQL that takes the existing migrations to schema.prisma. It stands in for `prisma migrate dev`,
// whose native engine cannot be downloaded here. Review the SQL before committing it.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../src/config.ts'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { diffMigrationsToSchema, MIGRATIONS_DIR, SCHEMA_FILE } from '../src/db/migrate.ts'

const name = process.argv[2]
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  console.error('usage: npm run db:new-migration -- <name in snake_case>')
  process.exit(2)
}

const config = loadConfig()
const log = pino({ level: 'warn' })
const embedded = config.DATABASE_URL
  ? undefined
  : await startEmbeddedPostgres({ dataDir: config.EMBEDDED_POSTGRES_DIR, log })
try {
  const server = config.DATABASE_URL ?? embedded!.connectionString('postgres')
  const sql = await diffMigrationsToSchema(server, await readFile(SCHEMA_FILE, 'utf8'))
  const statements = sql.split('\n').filter((line) => line.trim() && !line.startsWith('--'))
  if (statements.length === 0) {
    console.log('schema.prisma matches prisma/migrations: no migration needed')
  } else {
    const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14)
    const dir = path.join(MIGRATIONS_DIR, `${stamp}_${name}`)
    await mkdir(dir)
    await writeFile(path.join(dir, 'migration.sql'), `${sql}\n`)
    console.log(`wrote ${path.relative(process.cwd(), dir)}/migration.sql:\n\n${sql}`)
  }
} finally {
  await embedded?.stop()
}
