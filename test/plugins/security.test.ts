import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import supertest from 'supertest'
import { buildTestApp, type TestApp } from '../helpers/app.ts'

describe('security headers, limits, CORS and rate limiting', () => {
  let test: TestApp
  let withCors: TestApp
  before(async () => {
    const extraRoutes = (app: TestApp['app']) => {
      app.post('/echo', async (request) => ({ size: JSON.stringify(request.body).length }))
    }
    test = await buildTestApp({
      extraRoutes,
      http: { rateLimitPerMinute: 5, bodyLimitBytes: 2048, maxHeaderBytes: 4096 },
    })
    withCors = await buildTestApp({ extraRoutes, http: { corsOrigins: ['https://portal.contoso.example'] } })
    await test.app.listen({ port: 0, host: '127.0.0.1' })
  })
  after(async () => {
    await test.close()
    await withCors.close()
  })

  it('sends security headers', async () => {
    const response = await supertest(test.app.server).get('/healthz').expect(200)
    assert.equal(response.headers['x-content-type-options'], 'nosniff')
    assert.equal(response.headers['x-frame-options'], 'SAMEORIGIN')
    assert.match(response.headers['strict-transport-security'] as string, /max-age=/)
    assert.match(response.headers['content-security-policy'] as string, /default-src 'self'/)
  })

  it('sends no CORS headers unless origins are configured', async () => {
    const origin = 'https://portal.contoso.example'
    const plain = await supertest(test.app.server).get('/healthz').set('origin', origin)
    assert.equal(plain.headers['access-control-allow-origin'], undefined)
    const preflight = await supertest(test.app.server)
      .options('/echo')
      .set('origin', origin)
      .set('access-control-request-method', 'POST')
    assert.equal(preflight.headers['access-control-allow-origin'], undefined)

    const allowed = await supertest(withCors.app.server).get('/healthz').set('origin', origin)
    assert.equal(allowed.headers['access-control-allow-origin'], origin)
    const other = await supertest(withCors.app.server).get('/healthz').set('origin', 'https://evil.example')
    assert.equal(other.headers['access-control-allow-origin'], undefined)
  })

  it('refuses an oversized body with 413 problem details', async () => {
    const response = await supertest(test.app.server)
      .post('/echo')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ padding: 'x'.repeat(4096) }))
    assert.equal(response.status, 413)
    assert.equal(response.body.code, 'payload-too-large')
    assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8')
  })

  it('refuses oversized headers with 431', async () => {
    const { port } = test.app.server.address() as { port: number }
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/healthz', headers: { 'x-padding': 'y'.repeat(8192) } },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.on('error', reject)
      req.end()
    })
    assert.equal(status, 431)
  })

  it('rate-limits a caller with 429 problem details and Retry-After; probes are never limited', async () => {
    const agent = supertest(test.app.server)
    const statuses = []
    for (let i = 0; i < 7; i++) statuses.push((await agent.post('/echo').send({ i })).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429])
    const limited = await agent.post('/echo').send({})
    assert.equal(limited.body.code, 'rate-limited')
    assert.ok(Number(limited.headers['retry-after']) > 0)
    for (let i = 0; i < 10; i++) await agent.get('/healthz').expect(200)
  })
})
