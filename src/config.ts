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
  EXPORT_CONCURRENCY: Type.Integer({
    default: 4,
    minimum: 1,
    maximum: 50,
    description:
      'History exports (CSV, NDJSON) streaming at once per process, each on a Postgres connection of its own beside DB_POOL_MAX.',
  }),
  AZURE_CLOUD: Type.Enum(['emulator', 'AzurePublicCloud', 'AzureChinaCloud', 'AzureUSGovernment'], {
    default: 'emulator',
    description:
      'Which Azure to talk to. `emulator` starts the local Azure emulator in-process with the demo topology (the default of `npm start`); a container sets a real cloud.',
  }),
  AZURE_AUTHORITY_HOST: Type.Optional(
    Type.String({
      pattern: '^https://',
      description: "Entra ID endpoint, overriding the cloud's (e.g. a standalone `npm run emulator`).",
    }),
  ),
  AZURE_RESOURCE_MANAGER_URL: Type.Optional(
    Type.String({
      pattern: '^https://',
      description: "ARM endpoint, overriding the cloud's (e.g. a standalone `npm run emulator`).",
    }),
  ),
  AZURE_CA_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: "PEM file of an extra CA to trust for Azure endpoints (the emulator's `caFile`).",
    }),
  ),
  BROKER_IDENTITY: Type.Enum(['default', 'client-secret'], {
    default: 'default',
    description:
      "The broker's own identity to Key Vault when AZURE_CLOUD is not `emulator`: `default` is DefaultAzureCredential (managed or workload identity in Azure); `client-secret` reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET from the environment.",
  }),
  EMULATOR_STATE_FILE: Type.String({
    default: '.data/emulator/state.json',
    minLength: 1,
    description:
      "With AZURE_CLOUD=emulator: where the emulated Azure is kept across restarts, so it agrees with the database's ledger.",
  }),
  AUTH_TENANT_ID: Type.Optional(
    Type.String({
      pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
      description:
        "Tenant whose Entra ID issues callers' tokens (issuer `<authority>/<tenant>/v2.0`). Required unless AZURE_CLOUD=emulator.",
    }),
  ),
  AUTH_AUDIENCE: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        "Audiences callers' tokens must carry, comma-separated: the API app's client id (v2 tokens) and/or its identifier URI. Required unless AZURE_CLOUD=emulator.",
    }),
  ),
  SECRET_CACHE_SECONDS: Type.Integer({
    default: 300,
    minimum: 0,
    maximum: 86400,
    description: 'How long a client secret read from Key Vault is kept in memory (never on disk).',
  }),
  WORKER_CONCURRENCY: Type.Integer({
    default: 8,
    minimum: 1,
    maximum: 200,
    description: 'Operations this process runs at once.',
  }),
  SUBSCRIPTION_CONCURRENCY: Type.Integer({
    default: 4,
    minimum: 1,
    maximum: 100,
    description:
      "Operations running at once per managed subscription, across all broker processes (ARM's write throttling).",
  }),
  OPERATION_RETRY_LIMIT: Type.Integer({
    default: 6,
    minimum: 0,
    maximum: 50,
    description:
      'Retries (with exponential backoff) of an operation that failed for a transient reason (throttling, 5xx, network).',
  }),
  JOB_QUEUE_SCHEMA: Type.String({
    default: 'pgboss',
    pattern: '^[a-z_][a-z0-9_]{0,62}$',
    description: 'Postgres schema of the job queue (pg-boss).',
  }),
  RATE_LIMIT_PER_MINUTE: Type.Integer({
    default: 600,
    minimum: 1,
    maximum: 1_000_000,
    description: 'Requests per minute per caller (per token object id; per address before authentication).',
  }),
  CORS_ORIGINS: Type.Optional(
    Type.String({
      pattern: '^https?://[^,\\s]+(,https?://[^,\\s]+)*$',
      description: 'Browser origins allowed to call the API, comma-separated. Unset: no CORS headers at all.',
    }),
  ),
  BODY_LIMIT_BYTES: Type.Integer({
    default: 65536,
    minimum: 1024,
    maximum: 10_485_760,
    description: 'Largest request body accepted (413 beyond).',
  }),
  MAX_HEADER_BYTES: Type.Integer({
    default: 16384,
    minimum: 4096,
    maximum: 65536,
    description: 'Largest request header section accepted (431 beyond).',
  }),
  WAIT_MAX_SECONDS: Type.Integer({
    default: 60,
    minimum: 0,
    maximum: 300,
    description: 'Upper bound of `?wait=` on requests that start an operation.',
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
