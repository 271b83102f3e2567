import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import request from 'supertest'
import { Type } from 'typebox'
import { ProblemError } from '../../src/services/errors.ts'
import { buildTestApp, type TestApp } from '../helpers/app.ts'

describe('problem details (RFC 9457)', () => {
  let t: TestApp
  before(async () => {
    t = await buildTestApp({
      extraRoutes: (app) => {
        app.post(
          '/test/echo',
          {
            schema: {
              body: Type.Object({ name: Type.String({ maxLength: 8 }) }, { additionalProperties: false }),
            },
          },
          async (req) => req.body,
        )
        app.get('/test/conflict', async () => {
          throw new ProblemError(409, 'vnet-exists', 'VNet already exists', 'Pick another name.', { vnetName: 'v1' })
        })
        app.get('/test/upstream', async () => {
          // What an Azure SDK RestError looks like: a 4xx status that is not the caller's fault.
          throw Object.assign(new Error('AADSTS7000215: Invalid client secret provided. Trace ID: x'), {
            statusCode: 401,
          })
        })
        app.get('/test/database', async () => t.prisma.$queryRaw`SELECT 1 AS one`)
        app.get('/test/crash', async () => {
          throw new Error('password=hunter2 at db.internal:5432')
        })
      },
    })
  })
  after(async () => t.close())

  function assertProblem(res: request.Response, status: number, code: string) {
    assert.equal(res.status, status)
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/)
    assert.equal(res.body.status, status)
    assert.equal(res.body.code, code)
    assert.equal(res.body.type, `urn:ipam-broker:problem:${code}`)
    assert.equal(typeof res.body.title, 'string')
    assert.equal(typeof res.body.detail, 'string')
    assert.equal(res.body.requestId, res.headers['x-request-id'])
  }

  it('a database with no free connection is 503 database-busy with Retry-After, not a 500', async () => {
    // The test app's pool has two connections: hold both until the request has given up waiting (5 s).
    let release = () => {}
    const held = new Promise<void>((resolve) => (release = resolve))
    const holders = [0, 1].map(() =>
      t.prisma.$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT 1`
          await held
        },
        { timeout: 20_000 },
      ),
    )
    await new Promise((resolve) => setTimeout(resolve, 200))
    try {
      const res = await request(t.app.server).get('/test/database')
      assertProblem(res, 503, 'database-busy')
      assert.equal(res.headers['retry-after'], '1')
    } finally {
      release()
      await Promise.all(holders)
    }
    const after = await request(t.app.server).get('/test/database')
    assert.equal(after.status, 200)
  })

  it('unknown routes are 404 problems', async () => {
    const res = await request(t.app.server).get('/v1/nothing-here?x=1')
    assertProblem(res, 404, 'not-found')
    assert.equal(res.body.instance, '/v1/nothing-here')
  })

  it('schema violations name the field, and unknown properties are refused rather than dropped', async () => {
    const tooLong = await request(t.app.server).post('/test/echo').send({ name: 'much-too-long' })
    assertProblem(tooLong, 400, 'validation-failed')
    assert.deepEqual(tooLong.body.errors, [
      { in: 'body', field: '/name', message: 'must NOT have more than 8 characters' },
    ])
    const extra = await request(t.app.server).post('/test/echo').send({ name: 'ok', admin: true })
    assertProblem(extra, 400, 'validation-failed')
    assert.equal(extra.body.errors[0].field, '/admin')
    assert.match(extra.body.errors[0].message, /additional properties/)
    const missing = await request(t.app.server).post('/test/echo').send({})
    assert.equal(missing.body.errors[0].field, '/name')
  })

  it('malformed JSON, wrong media types and oversized bodies are 4xx problems', async () => {
    const badJson = await request(t.app.server)
      .post('/test/echo')
      .set('content-type', 'application/json')
      .send('{"name":')
    assertProblem(badJson, 400, 'invalid-json')
    const xml = await request(t.app.server).post('/test/echo').set('content-type', 'application/xml').send('<a/>')
    assertProblem(xml, 415, 'unsupported-media-type')
    const huge = await request(t.app.server)
      .post('/test/echo')
      .send({ name: 'x'.repeat(100 * 1024) })
    assertProblem(huge, 413, 'payload-too-large')
  })

  it('domain errors keep their status, code and extensions', async () => {
    const res = await request(t.app.server).get('/test/conflict')
    assertProblem(res, 409, 'vnet-exists')
    assert.equal(res.body.detail, 'Pick another name.')
    assert.equal(res.body.vnetName, 'v1')
  })

  it('upstream errors with a 4xx status are not passed to the caller as their own', async () => {
    const res = await request(t.app.server).get('/test/upstream')
    assertProblem(res, 500, 'internal-error')
    assert.doesNotMatch(JSON.stringify(res.body), /AADSTS/)
  })

  it('unexpected errors are 500s that reveal nothing but the request id', async () => {
    const res = await request(t.app.server).get('/test/crash')
    assertProblem(res, 500, 'internal-error')
    assert.doesNotMatch(JSON.stringify(res.body), /hunter2|db\.internal/)
    assert.ok(res.body.detail.includes(res.body.requestId))
    assert.ok(t.logs.some((line) => line['msg'] === 'unhandled error' && line['requestId'] === res.body.requestId))
  })
})
