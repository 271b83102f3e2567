import { pino, type Logger, type LoggerOptions } from 'pino'

// Anything that can carry a credential is censored wherever it sits in a log line, at any depth and
// in any case: request headers, Azure SDK errors (which carry the request), and fields named like a
// secret, a password, a token or a connection string.
const SECRET_KEY =
  /secret|password|passwd|credential|assertion|(^|[-_])sas([-_]|$)|token$|^authorization$|^x-ms-authorization-auxiliary$|^(set-)?cookie$|api[-_]?key|connection[-_]?string|^database_url$/i
const CENSORED = '[redacted]'
const MAX_DEPTH = 10

export function censorSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value
  if (depth > MAX_DEPTH) return '[too deep]'
  if (value instanceof Error) return censorSecrets(pino.stdSerializers.err(value), depth)
  if (Array.isArray(value)) return value.map((item) => censorSecrets(item, depth + 1))
  if (value instanceof Date) return value
  const censored: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    censored[key] = SECRET_KEY.test(key) ? CENSORED : censorSecrets(item, depth + 1)
  }
  return censored
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'ipam-broker', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (object) => censorSecrets(object) as Record<string, unknown>,
    },
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
