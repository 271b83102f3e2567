import { pino, type Logger, type LoggerOptions } from 'pino'

// Anything that can carry a credential is censored wherever it appears in a log line: request
// headers, error objects from the Azure SDK, and any field named like a secret or a token.
const SECRET_FIELDS = [
  'authorization',
  '["x-ms-authorization-auxiliary"]',
  'cookie',
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  'clientAssertion',
  'client_assertion',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'connectionString',
  'DATABASE_URL',
]

export const REDACTED_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => (field.startsWith('[') ? `*${field}` : `*.${field}`)),
  ...SECRET_FIELDS.map((field) => (field.startsWith('[') ? `*.*${field}` : `*.*.${field}`)),
  ...SECRET_FIELDS.map((field) => (field.startsWith('[') ? `req.headers${field}` : `req.headers.${field}`)),
]

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'ipam-broker', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  }
}

function prettyPrinterInstalled(): boolean {
  try {
    import.meta.resolve('pino-pretty')
    return true
  } catch {
    return false // a development dependency: production images log JSON
  }
}

/** JSON lines to stdout; human-readable only when a person is watching and pino-pretty is installed. */
export function createLogger(level: string): Logger {
  const options = loggerOptions(level)
  if (process.stdout.isTTY && prettyPrinterInstalled()) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } } })
  }
  return pino(options)
}
