import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import supertest from 'supertest'
import { generateOpenApi, OPENAPI_FILE } from '../scripts/openapi.ts'
import { buildTestApp } from './helpers/app.ts'

describe('OpenAPI document', () => {
  it('openapi/openapi.json is what the route schemas generate (run npm run openapi after changing a route)', async () => {
    const generated = await generateOpenApi()
    const committed = await readFile(OPENAPI_FILE, 'utf8')
    assert.equal(committed, generated)
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
