import { createRemoteJWKSet, errors as joseErrors, type JWTPayload, jwtVerify } from 'jose'

/** Who is calling, from a validated Entra token. */
export interface Principal {
  /** Object id of the user or service principal. */
  oid: string
  tenantId: string
  /** Client app the token was issued to (azp in v2 tokens, appid in v1). */
  appId: string | undefined
  name: string | undefined
  roles: string[]
}

export type AuthenticationFailure =
  | 'missing-token'
  | 'malformed-token'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'bad-signature'
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
  readonly #issuer: string
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>

  constructor(options: CallerAuthenticatorOptions) {
    this.#options = options
    const base = `${options.authorityHost.replace(/\/+$/, '')}/${options.tenantId}`
    this.#issuer = `${base}/v2.0`
    this.#jwks = createRemoteJWKSet(new URL(`${base}/discovery/v2.0/keys`), { cooldownDuration: 30_000 })
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(authorization?.trim() ?? '')?.[1]
    if (!authorization)
      throw new AuthenticationError('missing-token', 'Send an Entra access token: Authorization: Bearer <token>.')
    if (!token) throw new AuthenticationError('malformed-token', 'The Authorization header must be "Bearer <token>".')
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
    const roles = Array.isArray(payload['roles'])
      ? payload['roles'].filter((r): r is string => typeof r === 'string')
      : []
    return {
      oid,
      tenantId,
      appId: claim('azp') ?? claim('appid'),
      name: claim('name') ?? claim('app_displayname'),
      roles,
    }
  }

  #failure(err: unknown): AuthenticationError {
    if (err instanceof joseErrors.JWTExpired)
      return new AuthenticationError('expired', 'The token has expired; get a new one.')
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'aud':
          return new AuthenticationError(
            'wrong-audience',
            `The token is not for this API; ask for a token whose audience is ${this.#options.audiences.join(' or ')}.`,
          )
        case 'iss':
          return new AuthenticationError('wrong-issuer', `The token was not issued by ${this.#issuer}.`)
        case 'nbf':
          return new AuthenticationError('not-yet-valid', 'The token is not valid yet (nbf is in the future).')
        default:
          return new AuthenticationError('missing-claims', `The token's ${err.claim} claim is missing or invalid.`)
      }
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
      return new AuthenticationError('unsupported-algorithm', 'Only RS256-signed tokens are accepted.')
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
