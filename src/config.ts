import envSchema from 'env-schema'
import { Type, type Static } from 'typebox'

// The one place settings come from. Each variable has a safe default or fails the boot with a sentence
// that names it; the README's configuration table is generated from these descriptions.
export const ConfigSchema = Type.Object({
  HOST: Type.String({
    default: '127.0.0.1',
    minLength: 1,
    description: 'Address to listen on. Use 0.0.0.0 in a container.',
  }),
  PORT: Type.Integer({
    default: 3000,
    minimum: 0,
    maximum: 65535,
    description: 'TCP port to listen on (0 picks a free port).',
  }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level.',
  }),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description:
        'Postgres connection string. Unset: an embedded PostgreSQL is started with its data in EMBEDDED_POSTGRES_DIR.',
    }),
  ),
  EMBEDDED_POSTGRES_DIR: Type.String({
    default: '.data/postgres',
    minLength: 1,
    description: 'Data folder of the embedded PostgreSQL (used only when DATABASE_URL is unset); kept across runs.',
  }),
  MIGRATE_ON_START: Type.Boolean({
    default: true,
    description: 'Apply pending migrations from prisma/migrations before listening.',
  }),
  SHUTDOWN_GRACE_MS: Type.Integer({
    // Below the 10 s most orchestrators (docker stop, Kubernetes' default grace) wait before SIGKILL.
    default: 8000,
    minimum: 100,
    maximum: 600000,
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take before the process exits anyway.',
  }),
  DB_POOL_MAX: Type.Integer({
    default: 10,
    minimum: 1,
    maximum: 200,
    description: 'Postgres connections per process.',
  }),
})

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

interface AjvError {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
}

function describe(error: AjvError): string {
  const variable = error.instancePath.replace(/^\//, '')
  if (error.keyword === 'enum') {
    return `${variable} must be one of ${(error.params['allowedValues'] as string[]).join(', ')}`
  }
  return `${variable} ${error.message ?? 'is invalid'}`
}

/** Validates the environment once; values are never echoed back (DATABASE_URL holds a password). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    // Only `env` is read (not process.env behind it), and an empty variable counts as unset.
    const data = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
    return envSchema<Config>({ schema: ConfigSchema, data, env: false, dotenv: false })
  } catch (err) {
    const errors = (err as { errors?: AjvError[] }).errors
    if (!errors) throw err
    throw new ConfigError(`Invalid configuration: ${errors.map(describe).join('; ')}`)
  }
}
