import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PrismaPg } from '@prisma/adapter-pg'
import { bindMigrationAwareSqlAdapterFactory, ColumnTypeEnum, DriverAdapterError } from '@prisma/driver-adapter-utils'
import type { DiffTarget, MigrationList, SchemaEngine, SchemaFilter } from '@prisma/schema-engine-wasm'
import pg from 'pg'
import { dropDatabase, ensureDatabase, withDatabase } from './databases.ts'

// Migrations are applied by Prisma's own schema engine compiled to Wasm, through the pg driver adapter:
// the native engine binary cannot be downloaded on offline machines. It records each migration in
// `_prisma_migrations` exactly as `prisma migrate deploy` does, so either tool can take over.

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const MIGRATIONS_DIR = path.join(projectRoot, 'prisma/migrations')
export const SCHEMA_FILE = path.join(projectRoot, 'prisma/schema.prisma')

const NO_FILTER: SchemaFilter = { externalTables: [], externalEnums: [] }
// Any constant works; it only has to be the same for every broker process migrating one database.
const MIGRATION_LOCK_KEY = 7_270_736_900

type PgAdapter = Awaited<ReturnType<PrismaPg['connect']>>

/**
 * Two gaps between PrismaPg and the native engine, closed for the schema engine only:
 * - executeScript splits a migration on every ';', which breaks function bodies and runs statements
 *   one by one; the native engine sends a migration as one simple query (one implicit transaction).
 * - the engine's catalogue queries return Postgres' one-byte "char" type (oid 18), which PrismaPg
 *   cannot map ("Column type 'char' could not be deserialized"); its values are plain text.
 */
class SchemaEnginePrismaPg extends PrismaPg {
  /** The engine never disposes its main connection; withEngine does, so no pool outlives a command. */
  readonly opened: PgAdapter[] = []

  override async connect(): Promise<PgAdapter> {
    const adapter = forSchemaEngine(await super.connect())
    this.opened.push(adapter)
    return adapter
  }

  override async connectToShadowDb(): Promise<PgAdapter> {
    return forSchemaEngine(await super.connectToShadowDb())
  }
}

const PG_CHAR = 18
const PG_TEXT = 25

function forSchemaEngine(adapter: PgAdapter): PgAdapter {
  const pool = adapter.underlyingDriver()
  const query = pool.query.bind(pool) as (config: pg.QueryConfig) => Promise<pg.QueryResult>
  // Which columns of the latest result were "char": PrismaPg reads them as text, the engine wants Character.
  let charColumns: number[] = []
  ;(pool as { query: unknown }).query = async (config: pg.QueryConfig) => {
    const result = await query(config)
    charColumns = []
    result.fields?.forEach((field, index) => {
      if (field.dataTypeID !== PG_CHAR) return
      field.dataTypeID = PG_TEXT
      charColumns.push(index)
    })
    return result
  }
  const queryRaw = adapter.queryRaw.bind(adapter)
  let queue: Promise<unknown> = Promise.resolve()
  // Serialised, so that charColumns belongs to this call's result.
  adapter.queryRaw = (sql) => {
    const run = queue.then(async () => {
      const result = await queryRaw(sql)
      for (const index of charColumns) result.columnTypes[index] = ColumnTypeEnum.Character
      return result
    })
    queue = run.catch(() => undefined)
    return run
  }
  adapter.executeScript = async (script: string) => {
    try {
      await query({ text: script })
    } catch (err) {
      const e = err as pg.DatabaseError
      throw new DriverAdapterError({
        kind: 'postgres',
        code: e.code ?? 'N/A',
        severity: e.severity ?? 'ERROR',
        message: e.message,
        detail: e.detail,
        column: e.column,
        hint: e.hint,
      })
    }
  }
  return adapter
}

// TypeScript declares WebAssembly only in its DOM lib; these are the two constructors used here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> }
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

let lastPanic: string | undefined
function takePanic(): string | undefined {
  const panic = lastPanic
  lastPanic = undefined
  return panic
}
let engineClass: Promise<typeof SchemaEngine> | undefined

/** Instantiates the Wasm engine as @prisma/internals does (the package entry needs experimental Wasm ESM imports). */
function loadSchemaEngine(): Promise<typeof SchemaEngine> {
  engineClass ??= (async () => {
    const require = createRequire(import.meta.url)
    const runtimePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg')
    // The engine reports a Rust panic's message through this global before it throws.
    ;(globalThis as { PRISMA_WASM_PANIC_REGISTRY?: unknown }).PRISMA_WASM_PANIC_REGISTRY ??= {
      set_message: (message: string) => {
        lastPanic = message
      },
    }
    const runtime = await import('@prisma/schema-engine-wasm/schema_engine_bg')
    const bytes = await readFile(path.join(path.dirname(runtimePath), 'schema_engine_bg.wasm'))
    // The engine leaves ~10 s timers behind after a command; unref'd, they no longer hold the process open.
    const imports: Record<string, unknown> = { ...runtime }
    for (const name of Object.keys(runtime).filter((key) => key.startsWith('__wbg_setTimeout_'))) {
      imports[name] = (callback: () => void, ms: number) => setTimeout(callback, ms >>> 0).unref()
    }
    const instance = new wasm.Instance(new wasm.Module(bytes), { './schema_engine_bg.js': imports })
    runtime.__wbg_set_wasm(instance.exports)
    ;(instance.exports['__wbindgen_start'] as () => void)()
    return runtime.SchemaEngine
  })()
  return engineClass
}

async function withEngine<T>(
  connectionString: string,
  schema: string | undefined,
  work: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const SchemaEngineClass = await loadSchemaEngine()
  const factory = new SchemaEnginePrismaPg({ connectionString })
  const adapter = bindMigrationAwareSqlAdapterFactory(factory)
  const datamodels: [string, string][] | undefined = schema === undefined ? undefined : [['schema.prisma', schema]]
  lastPanic = undefined
  let engine: SchemaEngine | undefined
  try {
    engine = await SchemaEngineClass.new({ datamodels }, () => {}, adapter)
    return await work(engine)
  } catch (err) {
    const panic = takePanic()
    if (panic !== undefined) throw new Error(`Prisma schema engine panicked: ${panic}`, { cause: err })
    throw err
  } finally {
    engine?.free()
    await Promise.all(factory.opened.map((opened) => opened.dispose()))
  }
}

/** The migrations folder in the shape the engine takes (the same reading `prisma migrate` does). */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationList> {
  const lockfilePath = path.join(dir, 'migration_lock.toml')
  const entries = existsSync(dir) ? await readdir(dir, { withFileTypes: true }) : []
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
  return {
    baseDir: dir,
    lockfile: {
      path: 'migration_lock.toml',
      content: existsSync(lockfilePath) ? await readFile(lockfilePath, 'utf8') : null,
    },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      names.map(async (name) => ({
        path: name,
        migrationFile: {
          path: 'migration.sql',
          content: await readFile(path.join(dir, name, 'migration.sql'), 'utf8').then(
            (value) => ({ tag: 'ok' as const, value }),
            (err: Error) => ({ tag: 'error' as const, value: err.message }),
          ),
        },
      })),
    ),
  }
}

export async function migrationNames(dir = MIGRATIONS_DIR): Promise<string[]> {
  return (await readMigrations(dir)).migrationDirectories.map((migration) => migration.path)
}

/**
 * Applies pending migrations. A session advisory lock serialises broker replicas that start together;
 * the engine itself skips migrations already recorded as finished.
 */
export async function applyMigrations(connectionString: string, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrationsList = await readMigrations(dir)
  const lock = new pg.Client({ connectionString })
  // If the lock's connection drops mid-migration, the engine's own connection reports the failure.
  lock.on('error', () => undefined)
  await lock.connect()
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    const { appliedMigrationNames } = await withEngine(connectionString, undefined, (engine) =>
      engine.applyMigrations({ migrationsList, filters: NO_FILTER }),
    )
    return appliedMigrationNames
  } finally {
    await lock.end()
  }
}

/**
 * The SQL that would take a database built from the migrations to the one `schema` describes; empty
 * when they agree. The Wasm engine replays the migrations on its main connection rather than in a
 * shadow database, so it is pointed at a scratch database created and dropped on the same server.
 */
export async function diffMigrationsToSchema(serverUrl: string, schema: string, dir = MIGRATIONS_DIR): Promise<string> {
  const scratch = withDatabase(serverUrl, `prisma_drift_${randomUUID().replaceAll('-', '')}`)
  await ensureDatabase(scratch)
  try {
    return await diff(scratch, { tag: 'migrations', ...(await readMigrations(dir)) }, schema)
  } finally {
    await dropDatabase(scratch)
  }
}

/** The SQL that builds `schema` in an empty database: the first draft of an initial migration. */
export function diffEmptyToSchema(serverUrl: string, schema: string): Promise<string> {
  return diff(serverUrl, { tag: 'empty' }, schema)
}

async function diff(connectionString: string, from: DiffTarget, schema: string): Promise<string> {
  const { stdout } = await withEngine(connectionString, schema, (engine) =>
    engine.diff({
      from,
      to: { tag: 'schemaDatamodel', files: [{ path: 'schema.prisma', content: schema }] },
      script: true,
      exitCode: null,
      filters: NO_FILTER,
    }),
  )
  return (stdout ?? '').trim()
}
