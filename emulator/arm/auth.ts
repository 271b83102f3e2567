import type { FastifyRequest } from 'fastify'
import { ArmError } from '../common/errors.ts'
import { ARM_AUDIENCES, v1Issuer } from '../entra/routes.ts'
import { type AccessTokenClaims, type TokenIssuer, TokenRejected } from '../entra/tokens.ts'

// ARM's front door: the bearer token (signature, audience, lifetime), its tenant against the
// subscription's, and up to three auxiliary tokens for linked resources in other tenants.

export const MAX_AUXILIARY_TOKENS = 3

export interface ArmCaller {
  primary: AccessTokenClaims
  /** Auxiliary tokens by tenant id. */
  auxiliary: Map<string, AccessTokenClaims>
}

function rejected(err: unknown, which: 'access' | 'auxiliary access', now: Date): ArmError {
  if (err instanceof TokenRejected && err.problem === 'expired') {
    return new ArmError(
      401,
      'ExpiredAuthenticationToken',
      `The ${which} token expiry UTC time is earlier than current UTC time '${now.toUTCString()}'.`,
    )
  }
  if (err instanceof TokenRejected && err.problem === 'audience') {
    return new ArmError(
      401,
      'InvalidAuthenticationToken',
      `The ${which} token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.`,
    )
  }
  return new ArmError(401, 'InvalidAuthenticationToken', `The ${which} token is invalid.`)
}

export async function authenticate(
  request: FastifyRequest,
  issuer: TokenIssuer,
  now: Date,
  subscriptionTenant: string | undefined,
): Promise<ArmCaller> {
  const header = request.headers.authorization
  if (!header) {
    throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.")
  }
  if (!header.startsWith('Bearer ')) {
    throw new ArmError(
      401,
      'AuthenticationFailed',
      "Authentication failed. The 'Authorization' header is provided in an invalid format.",
    )
  }
  let primary: AccessTokenClaims
  try {
    primary = await issuer.verify(header.slice('Bearer '.length), ARM_AUDIENCES)
  } catch (err) {
    throw rejected(err, 'access', now)
  }
  if (subscriptionTenant && primary.tid !== subscriptionTenant) {
    throw new ArmError(
      401,
      'InvalidAuthenticationTokenTenant',
      `The access token is from the wrong issuer '${v1Issuer(primary.tid)}'. It must match the tenant '${v1Issuer(subscriptionTenant)}' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/${subscriptionTenant}' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later.`,
    )
  }

  const auxiliary = new Map<string, AccessTokenClaims>()
  const raw = request.headers['x-ms-authorization-auxiliary']
  const values = (Array.isArray(raw) ? raw.join(',') : (raw ?? ''))
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
  if (values.length > MAX_AUXILIARY_TOKENS) {
    throw new ArmError(
      400,
      'TooManyAuxiliaryTokens',
      `The request has ${values.length} auxiliary tokens in header 'x-ms-authorization-auxiliary'; at most ${MAX_AUXILIARY_TOKENS} are allowed.`,
    )
  }
  for (const value of values) {
    if (!value.startsWith('Bearer ')) {
      throw new ArmError(
        401,
        'InvalidAuthenticationToken',
        "The 'x-ms-authorization-auxiliary' header is provided in an invalid format.",
      )
    }
    try {
      const claims = await issuer.verify(value.slice('Bearer '.length), ARM_AUDIENCES)
      auxiliary.set(claims.tid, claims)
    } catch (err) {
      throw rejected(err, 'auxiliary access', now)
    }
  }
  return { primary, auxiliary }
}
