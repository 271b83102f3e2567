import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'
import supertest from 'supertest'
import { GENERATED_DIR, generateClient } from '../openapi/client/generate.ts'
import { IDEMPOTENT_ROUTES } from '../openapi/client/src/client.ts'
import { generateOpenApi, OPENAPI_FILE } from '../scripts/openapi.ts'
import { buildTestApp } from './helpers/app.ts'

describe('OpenAPI document', () => {
  it('openapi/openapi.json is what the route schemas generate (run npm run openapi after changing a route)', async () => {
    const generated = await generateOpenApi()
    const committed = await readFile(OPENAPI_FILE, 'utf8')
    assert.equal(committed, generated)
  })

  it('openapi/client/src/generated is what openapi/openapi.json generates (run npm run client:generate)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ipam-broker-client-'))
    try {
      await generateClient(dir, { quiet: true })
      const files = async (root: string) =>
        (await readdir(root, { recursive: true, withFileTypes: true }))
          .filter((entry) => entry.isFile())
          .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
          .sort()
      const generated = await files(dir)
      assert.deepEqual(await files(GENERATED_DIR), generated)
      for (const file of generated) {
        const committed = await readFile(path.join(GENERATED_DIR, file), 'utf8')
        assert.equal(committed, await readFile(path.join(dir, file), 'utf8'), `${file} differs`)
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the client sends an Idempotency-Key on exactly the operations that declare one', async () => {
    const document = JSON.parse(await readFile(OPENAPI_FILE, 'utf8')) as {
      paths: Record<string, Record<string, { parameters?: { in: string; name: string }[] }>>
    }
    const declared = Object.entries(document.paths).flatMap(([route, operations]) =>
      Object.entries(operations)
        .filter(([, operation]) =>
          operation.parameters?.some((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key'),
        )
        .map(([method]) => `${method.toUpperCase()} ${route}`),
    )
    assert.deepEqual([...IDEMPOTENT_ROUTES].sort(), declared.sort())
  })

  it('names every operation and describes errors as problem details', async () => {
    const document = JSON.parse(await generateOpenApi()) as {
      paths: Record<string, Record<string, { operationId?: string }>>
      components: { schemas: Record<string, unknown> }
    }
    for (const [route, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        assert.ok(operation.operationId, `${method.toUpperCase()} ${route} has no operationId`)
      }
    }
    assert.ok(document.components.schemas['Problem'])
  })

  it('serves Swagger UI at /docs and the document at /docs/json', async () => {
    const test = await buildTestApp()
    try {
      const ui = await supertest(test.app.server).get('/docs/').redirects(1)
      assert.equal(ui.status, 200)
      assert.match(ui.headers['content-type'] as string, /text\/html/)
      assert.match(ui.text, /swagger-ui/i)
      const json = await supertest(test.app.server).get('/docs/json').expect(200)
      assert.equal((json.body as { openapi: string }).openapi, '3.1.0')
    } finally {
      await test.close()
    }
  })
})
