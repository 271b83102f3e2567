// `npm run docs:config`: writes the README's configuration table from the config schema, so the
// documentation cannot drift from what the process accepts (a test compares them).
import { readFile, writeFile } from 'node:fs/promises'
import { ConfigSchema } from '../src/config.ts'

interface PropertyDoc {
  description?: string
  default?: string | number | boolean
  enum?: string[]
  type?: string
}

export function configTable(): string {
  const required = new Set<string>(ConfigSchema.required ?? [])
  const rows = Object.entries(ConfigSchema.properties as Record<string, PropertyDoc>).map(([name, doc]) => {
    const fallback =
      doc.default === undefined ? (required.has(name) ? 'required' : '(unset)') : `\`${String(doc.default)}\``
    const values = doc.enum ? ` One of ${doc.enum.map((v) => `\`${v}\``).join(', ')}.` : ''
    return `| \`${name}\` | ${fallback} | ${doc.description ?? ''}${values} |`
  })
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n')
}

if (import.meta.main) {
  // Rewrites the table between the README's markers.
  const readmeFile = new URL('../README.md', import.meta.url)
  const readme = await readFile(readmeFile, 'utf8')
  const updated = readme.replace(
    /(<!-- config-table:start -->\n)[\s\S]*?(\n<!-- config-table:end -->)/,
    (_match, start: string, end: string) => `${start}${configTable()}${end}`,
  )
  await writeFile(readmeFile, updated)
  console.log(
    updated === readme ? 'README.md: configuration table already current' : 'README.md: configuration table updated',
  )
}
