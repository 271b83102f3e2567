import type { TokenCredential } from '@azure/identity'
import { type KeyVaultSecret, SecretClient } from '@azure/keyvault-secrets'
import type { Logger } from 'pino'
import type { BrokerMetrics } from '../metrics/broker-metrics.ts'

/** Where an app registration's client secret lives: a Key Vault secret, by vault URL and name. */
export interface SecretReference {
  vaultUrl: string
  secretName: string
}

export interface CredentialStoreOptions {
  /** The broker's own identity to Key Vault (managed identity in Azure). */
  credential: TokenCredential
  /** How long a secret is kept in memory before it is read again. */
  ttlMs: number
  log: Logger
  /** False against a local vault, whose challenge cannot name a Key Vault domain. */
  verifyChallengeResource?: boolean
  now?: () => number
  /** Counts the reads that reach Key Vault. */
  metrics?: BrokerMetrics
}

interface Cached {
  value: Promise<string>
  expiresAt: number
}

/** A secret could not be read from Key Vault; the message says which one and why, never its value. */
export class SecretUnavailableError extends Error {
  override name = 'SecretUnavailableError'
  readonly reference: SecretReference
  readonly statusCode: number | undefined
  readonly code: string | undefined

  constructor(reference: SecretReference, cause: unknown) {
    const { statusCode, code, message } = cause as { statusCode?: number; code?: string; message?: string }
    super(
      `Key Vault secret '${reference.secretName}' in ${reference.vaultUrl} could not be read: ${code ?? statusCode ?? ''} ${(message ?? String(cause)).split('\n')[0]}`.trim(),
      { cause },
    )
    this.reference = reference
    this.statusCode = statusCode
    this.code = code
  }
}

/**
 * Client secrets of the registered apps, read from Key Vault by reference and held in memory only,
 * for a bounded time. Concurrent readers of the same secret share one Key Vault request.
 */
export class CredentialStore {
  readonly #options: CredentialStoreOptions
  readonly #clients = new Map<string, SecretClient>()
  readonly #cache = new Map<string, Cached>()
  readonly #log: Logger

  constructor(options: CredentialStoreOptions) {
    this.#options = options
    this.#log = options.log.child({ module: 'credential-store' })
  }

  async secret(reference: SecretReference): Promise<string> {
    const key = cacheKey(reference)
    const now = (this.#options.now ?? Date.now)()
    const cached = this.#cache.get(key)
    if (cached && cached.expiresAt > now) return cached.value
    const value = this.#read(reference)
    this.#cache.set(key, { value, expiresAt: now + this.#options.ttlMs })
    // A failed read is not cached: the next caller tries again.
    value.catch(() => {
      if (this.#cache.get(key)?.value === value) this.#cache.delete(key)
    })
    return value
  }

  /** Forgets a secret, so the next use reads Key Vault again (after Entra refused it: rotated). */
  invalidate(reference: SecretReference, reason: string): void {
    if (this.#cache.delete(cacheKey(reference))) {
      this.#log.info(
        { vaultUrl: reference.vaultUrl, secretName: reference.secretName, reason },
        'secret dropped from cache',
      )
    }
  }

  async #read(reference: SecretReference): Promise<string> {
    let secret: KeyVaultSecret
    try {
      secret = await this.#client(reference.vaultUrl).getSecret(reference.secretName)
    } catch (err) {
      this.#options.metrics?.observeKeyVaultRead('failed')
      throw new SecretUnavailableError(reference, err)
    }
    this.#options.metrics?.observeKeyVaultRead('succeeded')
    if (!secret.value) throw new SecretUnavailableError(reference, new Error('the secret has no value'))
    this.#log.debug(
      { vaultUrl: reference.vaultUrl, secretName: reference.secretName, version: secret.properties.version },
      'secret read from Key Vault',
    )
    return secret.value
  }

  #client(vaultUrl: string): SecretClient {
    let client = this.#clients.get(vaultUrl)
    if (!client) {
      client = new SecretClient(vaultUrl, this.#options.credential, {
        disableChallengeResourceVerification: this.#options.verifyChallengeResource === false,
      })
      this.#clients.set(vaultUrl, client)
    }
    return client
  }
}

function cacheKey({ vaultUrl, secretName }: SecretReference): string {
  return `${vaultUrl.toLowerCase().replace(/\/+$/, '')}|${secretName.toLowerCase()}`
}
