import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import type { SecretKind } from '../../emulator/common/secret-record.ts'

// Issue 5, point 4: after the whole suite, none of the secrets and tokens used in the run is found in a
// log the broker wrote or anywhere in the run's database. The emulator records every password, vault
// secret and access token it makes (emulator/common/secret-record.ts), the helpers keep every broker
// log (run-logs.ts); this reads both, dumps the database, and reports where anything turned up.

/** Shorter values (the Key Vault tests' "one" and "x") would match by chance: counted, not searched. */
const MIN_LENGTH = 8
const CONTEXT_CHARS = 60
// `npm start` prints a Requester token for the user in its demo banner (announceDemo in src/server.ts),
// with process.stdout.write rather than the logger: that line is not a log line, and only it is skipped.
const DEMO_BANNER_TOKEN_LINE = /^ {2}export TOKEN=[\w-]+\.[\w-]+\.[\w-]+$/

interface Recorded {
  kind: SecretKind
  value: string
}

interface Haystack {
  source: string
  text: string
  lines: number
}

export interface LeakScan {
  summary: string
  /** One entry per leak: where, and the text around it with the secret masked. */
  leaks: string[]
}

async function filesIn(dir: string, ext: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [])
  return names.filter((name) => name.endsWith(ext)).map((name) => path.join(dir, name))
}

async function recordedSecrets(runDir: string): Promise<Map<string, Recorded>> {
  const byValue = new Map<string, Recorded>()
  for (const file of await filesIn(path.join(runDir, 'secrets'), '.jsonl')) {
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      if (!line) continue
      const recorded = JSON.parse(line) as Recorded
      if (!byValue.has(recorded.value)) byValue.set(recorded.value, recorded)
    }
  }
  return byValue
}

async function capturedLogs(runDir: string): Promise<{ haystacks: Haystack[]; bannerLines: number }> {
  const haystacks: Haystack[] = []
  let bannerLines = 0
  for (const file of (await filesIn(path.join(runDir, 'logs'), '.log')).sort()) {
    const lines = (await readFile(file, 'utf8')).split('\n')
    for (const [i, line] of lines.entries()) {
      // Blanked rather than dropped, so that a leak's line number is the file's.
      if (file.endsWith('.process.stdout.log') && DEMO_BANNER_TOKEN_LINE.test(line)) {
        lines[i] = ''
        bannerLines++
      }
    }
    haystacks.push({ source: path.relative(runDir, file), text: lines.join('\n'), lines: lines.filter(Boolean).length })
  }
  return { haystacks, bannerLines }
}

/** Every row of every table in every schema (the ledger's, each pg-boss schema, Prisma's), as JSON text. */
async function databaseDump(databaseUrl: string): Promise<Haystack[]> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    // Ordinary tables (partitions included, their partitioned parents hold no rows) and materialized views.
    const { rows: tables } = await client.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        ORDER BY 1`,
    )
    const dump: Haystack[] = []
    for (const { name } of tables) {
      const { rows } = await client.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${name} t`)
      dump.push({ source: `table ${name}`, text: rows.map((r) => r.row).join('\n'), lines: rows.length })
    }
    return dump
  } finally {
    await client.end()
  }
}

/**
 * What to look for: the value as stored, and as JSON or a URL would carry it; for a JWT, its signature
 * alone as well (a token cut short of its header and claims still leaks it).
 */
function probesOf(value: string): { probe: string; form?: string; after?: string }[] {
  const jwt = /^(eyJ[\w-]*\.[\w-]*\.)([\w-]*)$/.exec(value)
  if (jwt?.[1] && jwt[2] && jwt[2].length >= MIN_LENGTH) {
    // `after`: a signature right after its own header and claims is the whole token, reported once.
    return [{ probe: value }, { probe: jwt[2], form: 'signature', after: jwt[1] }]
  }
  const forms = new Map([[value, undefined as string | undefined]])
  for (const [form, encoded] of [
    ['JSON-escaped', JSON.stringify(value).slice(1, -1)],
    ['URL-encoded', encodeURIComponent(value)],
  ] as const) {
    if (!forms.has(encoded)) forms.set(encoded, form)
  }
  return [...forms].map(([probe, form]) => ({ probe, ...(form && { form }) }))
}

function lineOf(text: string, index: number): number {
  let line = 1
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++
  return line
}

/** The text around a hit, within its line. */
function around(text: string, index: number, length: number): string {
  const start = Math.max(text.lastIndexOf('\n', index) + 1, index - CONTEXT_CHARS)
  const newline = text.indexOf('\n', index + length)
  return text.slice(start, Math.min(newline === -1 ? text.length : newline, index + length + CONTEXT_CHARS))
}

export async function scanForLeaks(runDir: string, databaseUrl: string): Promise<LeakScan> {
  const secrets = await recordedSecrets(runDir)
  const { haystacks: logs, bannerLines } = await capturedLogs(runDir)
  const tables = await databaseDump(databaseUrl)
  const haystacks = [...logs, ...tables]
  // One pass per probe over everything; only a hit is looked for source by source.
  const everything = haystacks.map((h) => h.text).join('\0')
  const found: { label: string; where: string; context: string }[] = []
  const hits: { probe: string; label: string }[] = []
  const kinds = new Map<string, number>()
  let tooShort = 0
  for (const { kind, value } of secrets.values()) {
    if (value.length < MIN_LENGTH) {
      tooShort++
      continue
    }
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    for (const { probe, form, after } of probesOf(value)) {
      if (!everything.includes(probe)) continue
      const label = form ? `${kind}, ${form}` : kind
      hits.push({ probe, label })
      for (const { source, text } of haystacks) {
        for (let at = text.indexOf(probe); at !== -1; at = text.indexOf(probe, at + probe.length)) {
          if (after && text.startsWith(after, at - after.length)) continue
          const line = lineOf(text, at)
          const where = source.startsWith('table ') ? `${source}, row ${line}` : `${source}:${line}`
          found.push({ label, where, context: around(text, at, probe.length) })
        }
      }
    }
  }
  // Every secret that turned up is masked in every context shown, not only the one it was found as.
  const mask = (context: string) =>
    hits.reduce((text, { probe, label }) => text.replaceAll(probe, `[${label}]`), context)
  const leaks = found.map(({ label, where, context }) => `${label} in ${where}: …${mask(context)}…`)
  const counts = [...kinds].map(([kind, n]) => `${n} ${kind}`).join(', ')
  const logLines = logs.reduce((sum, h) => sum + h.lines, 0)
  const rows = tables.reduce((sum, h) => sum + h.lines, 0)
  const summary =
    `leak scan: ${secrets.size - tooShort} secrets and tokens checked (${counts || 'none recorded'}; ` +
    `${tooShort} under ${MIN_LENGTH} characters not searched) in ${logLines} log lines of ${logs.length} files ` +
    `(${bannerLines} demo banner token lines skipped) and ${rows} rows of ${tables.length} tables: ` +
    (leaks.length ? `${leaks.length} FOUND` : 'none found')
  return { summary, leaks }
}
