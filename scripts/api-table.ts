// `npm run docs:api`: writes the README's API table from openapi/openapi.json (itself generated from the
// route schemas by `npm run openapi`), so the table cannot drift from the routes (a test compares them).
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import * as prettier from 'prettier'
import { REQUIRED_ROLES_EXTENSION } from '../src/plugins/authentication.ts'

const OPENAPI_FILE = new URL('../openapi/openapi.json', import.meta.url)

interface OperationDoc {
  operationId?: string
  summary?: string
  [REQUIRED_ROLES_EXTENSION]?: string[]
}

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options']

/** The roles a caller needs, without Admin (which may call every route) unless only Admin may. */
function roleCell(roles: string[] | undefined): string {
  if (!roles?.length) return 'none'
  const others = roles.filter((role) => role !== 'Admin')
  return (others.length ? others : roles).join(', ')
}

/** A table cell's text, with the characters Markdown tables give a meaning escaped. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

export function apiTable(document: { paths: Record<string, Record<string, OperationDoc>> }): string {
  const rows = Object.entries(document.paths).flatMap(([route, operations]) =>
    METHODS.filter((method) => operations[method]).map((method) => {
      const operation = operations[method]!
      return `| ${method.toUpperCase()} | \`${cell(route)}\` | \`${operation.operationId ?? ''}\` | ${roleCell(
        operation[REQUIRED_ROLES_EXTENSION],
      )} | ${cell(operation.summary ?? '')} |`
    }),
  )
  return ['| Method | Path | Operation | Role | What it does |', '| --- | --- | --- | --- | --- |', ...rows].join('\n')
}

export async function apiTableFromFile(file: URL | string = OPENAPI_FILE): Promise<string> {
  return apiTable(JSON.parse(await readFile(file, 'utf8')) as Parameters<typeof apiTable>[0])
}

if (import.meta.main) {
  // Rewrites the table between the README's markers, aligned as Prettier (format:check) wants it.
  const readmeFile = fileURLToPath(new URL('../README.md', import.meta.url))
  const readme = await readFile(readmeFile, 'utf8')
  const markers = /(<!-- api-table:start -->)[\s\S]*?(<!-- api-table:end -->)/
  if (!markers.test(readme))
    throw new Error('README.md has no <!-- api-table:start --> … <!-- api-table:end --> region')
  const table = await apiTableFromFile()
  const updated = await prettier.format(
    readme.replace(markers, (_match, start: string, end: string) => `${start}\n\n${table}\n\n${end}`),
    { ...(await prettier.resolveConfig(readmeFile)), filepath: readmeFile },
  )
  await writeFile(readmeFile, updated)
  console.log(updated === readme ? 'README.md: API table already current' : 'README.md: API table updated')
}
