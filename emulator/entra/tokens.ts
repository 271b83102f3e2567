import { randomUUID } from 'node:crypto'
import {
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
  errors as joseErrors,
  decodeProtectedHeader,
} from 'jose'
import { recordSecret } from '../common/secret-record.ts'
import type { EmulatorState } from '../state.ts'

export const TOKEN_LIFETIME_SECONDS = 3599

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

export interface AccessTokenClaims {
  aud: string
  iss: string
  tid: string
  oid: string
  sub: string
  appid: string
  azp?: string
  roles?: string[]
  ver: '1.0' | '2.0'
  idtyp: 'app'
  iat: number
  nbf: number
  exp: number
}

export type TokenProblem = 'malformed' | 'signature' | 'expired' | 'not-yet-valid' | 'audience'

export class TokenRejected extends Error {
  readonly problem: TokenProblem
  constructor(problem: TokenProblem, message: string) {
    super(message)
    this.problem = problem
  }
}

/** Signs Entra-shaped RS256 access tokens with the emulator's key and checks them for the other services. */
export class TokenIssuer {
  private readonly kid: string
  private readonly privateKey: SigningKey
  readonly publicJwk: JWK
  private readonly state: EmulatorState

  private constructor(state: EmulatorState, kid: string, privateKey: SigningKey, publicJwk: JWK) {
    this.state = state
    this.kid = kid
    this.privateKey = privateKey
    this.publicJwk = publicJwk
  }

  static async create(state: EmulatorState): Promise<TokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
    const kid = randomUUID().replaceAll('-', '')
    const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' }
    return new TokenIssuer(state, kid, privateKey, jwk)
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] }
  }

  async sign(claims: Omit<AccessTokenClaims, 'iat' | 'nbf' | 'exp'>): Promise<string> {
    const now = Math.floor(this.state.now().getTime() / 1000)
    const token = await new SignJWT({ ...claims, uti: randomUUID().replaceAll('-', '') })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .setIssuedAt(now)
      .setNotBefore(now - 300)
      .setExpirationTime(now + TOKEN_LIFETIME_SECONDS)
      .sign(this.privateKey)
    recordSecret('access-token', token)
    return token
  }

  /** Signature (RS256, our key), lifetime on the emulator's clock, and one of the audiences. */
  async verify(token: string, audiences: string[]): Promise<AccessTokenClaims> {
    let header
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw new TokenRejected('malformed', 'The token is malformed.')
    }
    if (header.alg !== 'RS256' || header.kid !== this.kid) {
      throw new TokenRejected('signature', 'The token signature is invalid.')
    }
    try {
      const key = await importJWK(this.publicJwk, 'RS256')
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['RS256'],
        audience: audiences,
        currentDate: this.state.now(),
      })
      return payload as unknown as AccessTokenClaims
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TokenRejected('expired', 'The token is expired.')
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') {
        throw new TokenRejected('not-yet-valid', 'The token is not yet valid.')
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
        throw new TokenRejected('audience', 'The audience of the token is invalid.')
      }
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw new TokenRejected('signature', 'The token signature is invalid.')
      }
      throw new TokenRejected('malformed', 'The token is malformed.')
    }
  }
}
