import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { configTable } from '../scripts/config-table.ts'
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
})
