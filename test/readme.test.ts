import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { apiTableFromFile } from '../scripts/api-table.ts'
import { configTable } from '../scripts/config-table.ts'
import { REQUIRED_ROLES_EXTENSION } from '../src/plugins/authentication.ts'
import { PROJECT_ROOT } from './helpers/process.ts'

/** Table cells, whatever the column padding (Prettier aligns Markdown tables). */
function cells(table: string): string[][] {
  return table
    .split('\n')
    .filter((line) => line.startsWith('|') && !/^\|[\s|-]+\|$/.test(line))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
}

describe('README', () => {
  it('starts with the two commands', async () => {
    const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8')
    const top = readme.split('\n').slice(0, 8).join('\n')
    assert.match(top, /npm install && npm start/)
    assert.match(top, /npm install && npm test/)
  })

  it('documents the configuration the process actually accepts (npm run docs:config)', async () => {
    const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8')
    const table = /<!-- config-table:start -->([\s\S]*?)<!-- config-table:end -->/.exec(readme)?.[1]
    assert.ok(table, 'README has the config-table markers')
    assert.deepEqual(cells(table), cells(configTable()))
  })

  it('lists every route of openapi/openapi.json with its app roles (npm run openapi, then npm run docs:api)', async () => {
    const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8')
    const table = /<!-- api-table:start -->([\s\S]*?)<!-- api-table:end -->/.exec(readme)?.[1]
    assert.ok(table, 'README has the api-table markers')
    assert.deepEqual(cells(table), cells(await apiTableFromFile()))
  })

  it('has every /v1 operation name the app roles it needs, so the table never says none for one', async () => {
    const document = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'openapi/openapi.json'), 'utf8')) as {
      paths: Record<string, Record<string, Record<string, unknown>>>
    }
    const unstated = Object.entries(document.paths)
      .filter(([route]) => route.startsWith('/v1/'))
      .flatMap(([route, operations]) =>
        Object.entries(operations)
          .filter(([, operation]) => !(operation[REQUIRED_ROLES_EXTENSION] as string[] | undefined)?.length)
          .map(([method]) => `${method.toUpperCase()} ${route}`),
      )
    assert.deepEqual(unstated, [], 'these operations do not authenticate with a route-level app.requireRole(...)')
  })
})
