import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import request from 'supertest'
import { loggerOptions } from '../../src/logger.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'

describe('request ids and logging', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp()
  })
  after(async () => t.close())

  it('honours a caller x-request-id, echoes it, and logs one line for the request', async () => {
    const res = await request(t.app.server).get('/healthz').set('x-request-id', 'req-42.abc').expect(200)
    assert.equal(res.headers['x-request-id'], 'req-42.abc')
    const lines = t.logs.filter((line) => line['requestId'] === 'req-42.abc')
    assert.equal(lines.length, 1)
    assert.equal(lines[0]?.['msg'], 'request completed')
    assert.equal(lines[0]?.['statusCode'], 200)
    assert.equal(lines[0]?.['route'], '/healthz')
  })

  it('generates an id when none (or an unusable one) is given', async () => {
    const generated = await request(t.app.server).get('/healthz').expect(200)
    assert.match(generated.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/)
    const forged = await request(t.app.server).get('/healthz').set('x-request-id', 'x"} {"level":"fatal').expect(200)
    assert.match(forged.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/)
  })

  it('redacts credentials at any depth and in any case, including inside errors', () => {
    const lines: string[] = []
    const logger = pino(
      loggerOptions('info'),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString())
          done()
        },
      }),
    )
    const azureError = Object.assign(new Error('ARM said no'), {
      request: {
        headers: { Authorization: 'Bearer eyJ-in-error', 'x-ms-authorization-auxiliary': 'Bearer eyJ-aux-in-error' },
      },
    })
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJ-primary', 'X-MS-Authorization-Auxiliary': 'Bearer eyJ-aux' } },
        credential: {
          clientSecret: 'kv-secret-value',
          nested: { deeper: { deepest: { access_token: 'eyJ-nested' } } },
        },
        token: 'eyJ-top',
        apiKey: 'key-123',
        clientSecretValue: 'csv-456',
        config: { DATABASE_URL: 'postgresql://u:dbpass@h/db', connectionString: 'postgresql://u:dbpass2@h/db' },
        err: azureError,
        tokenRequests: 3,
      },
      'azure call',
    )
    const text = lines.join('')
    for (const secret of ['eyJ-', 'kv-secret-value', 'key-123', 'csv-456', 'dbpass']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`)
    }
    const line = JSON.parse(text) as { err: { message: string }; tokenRequests: number }
    assert.equal(line.err.message, 'ARM said no', 'errors keep their message')
    assert.equal(line.tokenRequests, 3, 'counters named like tokens are not secrets')
  })

  it('logs the path without the query string', async () => {
    await request(t.app.server).get('/healthz?access_token=eyJ-in-query').set('x-request-id', 'q-1').expect(200)
    const line = t.logs.find((entry) => entry['requestId'] === 'q-1')
    assert.equal(line?.['path'], '/healthz')
    assert.ok(!JSON.stringify(t.logs).includes('eyJ-in-query'))
  })
})
