/** What a credential's `getToken` resolves to; @azure/identity's AccessToken has this shape. */
export interface AccessToken {
  token: string
  /** When the token expires, in milliseconds since the epoch. */
  expiresOnTimestamp: number
  /** When @azure/identity advises asking for a new one (long-lived tokens), in milliseconds since the epoch. */
  refreshAfterTimestamp?: number
}

/**
 * Anything with @azure/identity's `getToken`: DefaultAzureCredential, ManagedIdentityCredential,
 * WorkloadIdentityCredential, ClientSecretCredential… Typed structurally, so the client does not depend on
 * @azure/identity.
 */
export interface TokenCredential {
  getToken(scopes: string | string[]): Promise<AccessToken | null>
}

/** A bearer token for the broker's API, from wherever the caller keeps one. */
export type TokenProvider = () => Promise<string>

/** The broker API's app id URI + `/.default`, as registered by the demo and the README's setup. */
export const DEFAULT_SCOPES: readonly string[] = ['api://ipam-broker/.default']

// Renewed this long before it expires, so a token is never sent in its last moments (clock skew, long polls).
const RENEW_BEFORE_EXPIRY_MS = 2 * 60_000

export interface BearerTokens {
  get(): Promise<string>
  /** Forget the cached token (the broker answered 401): the next request asks the credential again. */
  invalidate(): void
}

/**
 * A credential's tokens, cached until shortly before they expire: @azure/identity caches too, but asking it
 * still costs a call per request. Concurrent requests share one pending `getToken`.
 */
export function credentialTokens(credential: TokenCredential, scopes: readonly string[], now = Date.now): BearerTokens {
  let cached: { token: string; renewAt: number } | undefined
  let pending: Promise<string> | undefined
  const fetchToken = async () => {
    const token = await credential.getToken([...scopes])
    if (!token?.token) throw new Error(`the credential returned no token for ${scopes.join(' ')}`)
    const renewAt = Math.min(
      token.expiresOnTimestamp - RENEW_BEFORE_EXPIRY_MS,
      token.refreshAfterTimestamp ?? Number.POSITIVE_INFINITY,
    )
    cached = { token: token.token, renewAt }
    return token.token
  }
  return {
    get() {
      if (cached && now() < cached.renewAt) return Promise.resolve(cached.token)
      pending ??= fetchToken().finally(() => {
        pending = undefined
      })
      return pending
    },
    invalidate() {
      cached = undefined
    },
  }
}

/** A plain provider is asked before every request: it knows best how long its tokens live. */
export function providedTokens(provider: TokenProvider): BearerTokens {
  return { get: provider, invalidate: () => {} }
}
