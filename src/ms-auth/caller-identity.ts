import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
} from 'jose'

/** Who is calling, from a validated Entra token. */
export interface Principal {
  /** Object id of the user or service principal. */
  oid: string
  tenantId: string
  /** Client app the token was issued to (azp in v2 tokens, appid in v1). */
  appId: string | undefined
  name: string | undefined
  roles: string[]
  /** Group object ids from the token's groups claim (grants may name a group). */
  groups: string[]
}

export type AuthenticationFailure =
  | 'missing-token'
  | 'malformed-token'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'other-tenant'
  | 'bad-signature'
  | 'unsigned-token'
  | 'unsupported-algorithm'
  | 'missing-claims'
  | 'issuer-unreachable'

/** The caller could not be authenticated; `reason` is stable, the message is for humans. */
export class AuthenticationError extends Error {
  override name = 'AuthenticationError'
  readonly reason: AuthenticationFailure

  constructor(reason: AuthenticationFailure, message: string) {
    super(message)
    this.reason = reason
  }
}

export interface CallerAuthenticatorOptions {
  authorityHost: string
  tenantId: string
  audiences: readonly string[]
  clockToleranceSeconds?: number
}

/**
 * Validates bearer tokens locally against the tenant's published signing keys (jose's remote JWKS
 * keeps them cached and re-fetches when a token names an unknown key: rotation). RS256 only.
 */
export class CallerAuthenticator {
  readonly #options: CallerAuthenticatorOptions
  readonly #authorityHost: string
  readonly #tenantId: string
  readonly #issuer: string
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>
  /** `<authorityHost>/<tenant>`: where callers get tokens (the WWW-Authenticate challenge names it). */
  readonly authority: string

  constructor(options: CallerAuthenticatorOptions) {
    this.#options = options
    // Entra writes tenant ids in lower case in iss and tid.
    this.#tenantId = options.tenantId.toLowerCase()
    this.#authorityHost = options.authorityHost.replace(/\/+$/, '')
    this.authority = `${this.#authorityHost}/${this.#tenantId}`
    this.#issuer = `${this.authority}/v2.0`
    this.#jwks = createRemoteJWKSet(new URL(`${this.authority}/discovery/v2.0/keys`), { cooldownDuration: 30_000 })
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(authorization?.trim() ?? '')?.[1]
    if (!authorization)
      throw new AuthenticationError('missing-token', 'Send an Entra access token: Authorization: Bearer <token>.')
    if (!token) throw new AuthenticationError('malformed-token', 'The Authorization header must be "Bearer <token>".')
    this.#screen(token)
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, this.#jwks, {
        issuer: this.#issuer,
        audience: [...this.#options.audiences],
        algorithms: ['RS256'],
        clockTolerance: this.#options.clockToleranceSeconds ?? 60,
        requiredClaims: ['exp', 'nbf', 'tid', 'oid'],
      }))
    } catch (err) {
      throw this.#failure(err)
    }
    const claim = (name: string) => (typeof payload[name] === 'string' ? payload[name] : undefined)
    const oid = claim('oid')
    const tenantId = claim('tid')
    if (!oid || !tenantId) throw new AuthenticationError('missing-claims', 'The token lacks the oid or tid claim.')
    if (tenantId !== this.#tenantId) throw this.#otherTenant(tenantId)
    const strings = (value: unknown) =>
      Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []
    return {
      oid,
      tenantId,
      appId: claim('azp') ?? claim('appid'),
      name: claim('name') ?? claim('app_displayname'),
      roles: strings(payload['roles']),
      groups: strings(payload['groups']).map((group) => group.toLowerCase()),
    }
  }

  /**
   * Names what is wrong with the token's header and claims before its signature is checked, so the
   * caller hears the fixable reason (wrong scope, wrong tenant) rather than "bad signature", and tokens
   * minted elsewhere never make the JWKS re-fetch. Only ever rejects: acceptance is jwtVerify's.
   */
  #screen(token: string): void {
    let alg: unknown
    let claims: JWTPayload
    try {
      alg = decodeProtectedHeader(token).alg
      claims = decodeJwt(token)
    } catch {
      throw new AuthenticationError('malformed-token', 'The token is not a well-formed JWT.')
    }
    if (typeof alg === 'string' && alg.toLowerCase() === 'none')
      throw new AuthenticationError(
        'unsigned-token',
        'The token is unsigned (alg none); send a token signed by Entra ID.',
      )
    if (alg !== 'RS256') throw this.#unsupportedAlgorithm()
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? [])
    if (!audiences.some((aud) => this.#options.audiences.includes(aud))) throw this.#wrongAudience()
    if (claims.iss !== this.#issuer) {
      // Another tenant of the same authority: its v2 issuer, naming the tenant in its tid.
      const [prefix, suffix] = [`${this.#authorityHost}/`, '/v2.0']
      const tenant =
        claims.iss?.startsWith(prefix) && claims.iss.endsWith(suffix)
          ? claims.iss.slice(prefix.length, -suffix.length)
          : undefined
      if (tenant && tenant === claims['tid'] && /^[0-9a-f-]{36}$/.test(tenant)) throw this.#otherTenant(tenant)
      throw this.#wrongIssuer()
    }
  }

  #wrongAudience(): AuthenticationError {
    return new AuthenticationError(
      'wrong-audience',
      `The token is not for this API; ask for a token whose audience is ${this.#options.audiences.join(' or ')}.`,
    )
  }

  #wrongIssuer(): AuthenticationError {
    return new AuthenticationError('wrong-issuer', `The token was not issued by ${this.#issuer}.`)
  }

  #otherTenant(tenantId: string): AuthenticationError {
    return new AuthenticationError(
      'other-tenant',
      `The token was issued for tenant ${tenantId}; this API accepts tokens of tenant ${this.#tenantId} only.`,
    )
  }

  #unsupportedAlgorithm(): AuthenticationError {
    return new AuthenticationError('unsupported-algorithm', 'Only RS256-signed tokens are accepted.')
  }

  #failure(err: unknown): AuthenticationError {
    if (err instanceof joseErrors.JWTExpired)
      return new AuthenticationError('expired', 'The token has expired; get a new one.')
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'aud':
          return this.#wrongAudience()
        case 'iss':
          return this.#wrongIssuer()
        case 'nbf':
          return new AuthenticationError('not-yet-valid', 'The token is not valid yet (nbf is in the future).')
        default:
          return new AuthenticationError('missing-claims', `The token's ${err.claim} claim is missing or invalid.`)
      }
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
      return this.#unsupportedAlgorithm()
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWKSNoMatchingKey) {
      return new AuthenticationError('bad-signature', "The token's signature does not verify with the issuer's keys.")
    }
    if (
      err instanceof joseErrors.JWKSTimeout ||
      (err instanceof Error && /fetch|ECONN|certificate/i.test(err.message))
    ) {
      return new AuthenticationError(
        'issuer-unreachable',
        "The issuer's signing keys could not be fetched; try again shortly.",
      )
    }
    return new AuthenticationError('malformed-token', 'The token is not a well-formed JWT.')
  }
}
