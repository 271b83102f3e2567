import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError, ConfigSchema, loadConfig } from '../src/config.ts'

describe('configuration', () => {
  it('boots with no variables at all, on embedded defaults', () => {
    const config = loadConfig({})
    assert.equal(config.PORT, 3000)
    assert.equal(config.HOST, '127.0.0.1')
    assert.equal(config.DATABASE_URL, undefined)
    assert.equal(config.EMBEDDED_POSTGRES_DIR, '.data/postgres')
    assert.equal(config.MIGRATE_ON_START, true)
  })

  it('coerces strings from the environment', () => {
    const config = loadConfig({ PORT: '8080', MIGRATE_ON_START: 'false', LOG_LEVEL: 'debug' })
    assert.equal(config.PORT, 8080)
    assert.equal(config.MIGRATE_ON_START, false)
    assert.equal(config.LOG_LEVEL, 'debug')
  })

  it('names each invalid variable', () => {
    assert.throws(
      () => loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud', SHUTDOWN_GRACE_MS: '5' }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError)
        assert.match(err.message, /PORT must be integer/)
        assert.match(err.message, /LOG_LEVEL must be one of fatal, error, warn, info/)
        assert.match(err.message, /SHUTDOWN_GRACE_MS must be >= 100/)
        return true
      },
    )
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT must be <= 65535/)
  })

  it('never echoes a value back: DATABASE_URL carries a password', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://admin:hunter2-secret@db/x' }),
      (err: Error) => {
        assert.match(err.message, /DATABASE_URL must match pattern/)
        assert.doesNotMatch(err.message, /hunter2/)
        return true
      },
    )
  })

  it('documents every variable (the README table is generated from these descriptions)', () => {
    for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
      assert.ok((schema as { description?: string }).description, `${name} has no description`)
    }
  })
})
