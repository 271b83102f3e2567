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

  it('redacts authorization headers and secret-bearing fields', () => {
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
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJ-primary', 'x-ms-authorization-auxiliary': 'Bearer eyJ-aux' } },
        credential: { clientSecret: 'kv-secret-value', nested: { access_token: 'eyJ-nested' } },
        token: 'eyJ-top',
        config: { DATABASE_URL: 'postgresql://u:dbpass@h/db' },
      },
      'azure call',
    )
    const text = lines.join('')
    for (const secret of ['eyJ-primary', 'eyJ-aux', 'kv-secret-value', 'eyJ-nested', 'eyJ-top', 'dbpass']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`)
    }
    assert.match(text, /\[redacted\]/)
  })
})
