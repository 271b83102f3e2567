import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { VAULT_AUDIENCES, v1Issuer } from '../entra/routes.ts'
import { TokenRejected, type AccessTokenClaims, type TokenIssuer } from '../entra/tokens.ts'
import type { EmulatorState, SecretVersion, Vault } from '../state.ts'

// One Key Vault, on a listener of its own (the SDK parses secret ids as https://{vault}/secrets/{name}/{version},
// so a vault cannot live under a path prefix). Secrets: get (latest or a version), set, list versions.

const API_VERSIONS = new Set(['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01', '2026-04-01'])

export interface KeyVaultOptions {
  state: EmulatorState
  issuer: TokenIssuer
  vault: Vault
  vaultUrl: () => string
  loginUrl: () => string
}

function sendKvError(reply: FastifyReply, status: number, code: string, message: string, inner?: string) {
  return reply.code(status).send({ error: { code, message, ...(inner && { innererror: { code: inner } }) } })
}

const unixSeconds = (date: Date) => Math.floor(date.getTime() / 1000)

export async function keyVaultRoutes(
  app: FastifyInstance,
  { state, issuer, vault, vaultUrl, loginUrl }: KeyVaultOptions,
) {
  const bundle = (name: string, secret: SecretVersion, withValue: boolean) => ({
    ...(withValue && { value: secret.value }),
    id: `${vaultUrl()}/secrets/${name}/${secret.version}`,
    ...(secret.contentType && { contentType: secret.contentType }),
    attributes: {
      enabled: secret.enabled,
      ...(secret.notBefore && { nbf: unixSeconds(secret.notBefore) }),
      ...(secret.expires && { exp: unixSeconds(secret.expires) }),
      created: unixSeconds(secret.created),
      updated: unixSeconds(secret.updated),
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
    },
    ...(secret.tags && { tags: secret.tags }),
  })

  // api-version, then the bearer challenge, then the caller's right to the vault.
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    const version = (request.query as Record<string, string | undefined>)['api-version']
    if (!version || !API_VERSIONS.has(version)) {
      return sendKvError(
        reply,
        400,
        'BadParameter',
        `The specified version (${version ?? ''}) is not recognized. Consider using the latest supported version (2026-04-01).`,
      )
    }
    const challenge = `Bearer authorization="${loginUrl()}/${vault.tenantId}", resource="https://vault.azure.net"`
    const header = request.headers.authorization
    if (!header?.startsWith('Bearer ')) {
      reply.header('www-authenticate', challenge)
      return sendKvError(reply, 401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.')
    }
    let claims: AccessTokenClaims
    try {
      claims = await issuer.verify(header.slice('Bearer '.length), VAULT_AUDIENCES)
    } catch (err) {
      reply.header('www-authenticate', challenge)
      const reason =
        err instanceof TokenRejected && err.problem === 'expired'
          ? 'AKV10032: Token expired.'
          : 'AKV10022: Invalid audience or signature.'
      return sendKvError(reply, 401, 'Unauthorized', reason)
    }
    if (claims.iss !== v1Issuer(vault.tenantId)) {
      reply.header('www-authenticate', challenge)
      return sendKvError(
        reply,
        401,
        'Unauthorized',
        `AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${vault.tenantId}/, found ${claims.iss}.`,
      )
    }
    if (!vault.secretOfficers.includes(claims.appid)) {
      return sendKvError(
        reply,
        403,
        'Forbidden',
        `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${claims.appid};oid=${claims.oid}\r\nVault: ${vault.name};location=emulator`,
        'ForbiddenByRbac',
      )
    }
  })

  const notFound = (reply: FastifyReply, name: string, version?: string) =>
    sendKvError(
      reply,
      404,
      'SecretNotFound',
      version
        ? `A secret with (name/id) ${name}/${version} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`
        : `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    )

  app.get<{ Params: { name: string } }>('/secrets/:name/versions', async (request, reply) => {
    const versions = vault.secrets.get(request.params.name)
    if (!versions) return notFound(reply, request.params.name)
    return { value: versions.map((secret) => bundle(request.params.name, secret, false)), nextLink: null }
  })

  const getSecret = async (
    request: FastifyRequest<{ Params: { name: string; version?: string } }>,
    reply: FastifyReply,
  ) => {
    const { name, version } = request.params
    const versions = vault.secrets.get(name)
    const secret = version ? versions?.find((v) => v.version === version) : versions?.at(-1)
    if (!secret) return notFound(reply, name, version || undefined)
    if (!secret.enabled) {
      return sendKvError(
        reply,
        403,
        'Forbidden',
        'Operation get is not allowed on a disabled secret.',
        'SecretDisabled',
      )
    }
    const now = state.now()
    if ((secret.expires && secret.expires <= now) || (secret.notBefore && secret.notBefore > now)) {
      return sendKvError(
        reply,
        403,
        'Forbidden',
        `Operation get is not allowed on an expired or not yet valid secret.`,
        'SecretExpired',
      )
    }
    state.count(state.counters.secretReads, `${vault.name}/${name}`)
    return bundle(name, secret, true)
  }
  app.get('/secrets/:name', getSecret)
  app.get('/secrets/:name/', getSecret)
  app.get('/secrets/:name/:version', getSecret)

  app.put<{
    Params: { name: string }
    Body: {
      value?: unknown
      contentType?: string
      tags?: Record<string, string>
      attributes?: { enabled?: boolean; exp?: number; nbf?: number }
    }
  }>('/secrets/:name', async (request, reply) => {
    const { name } = request.params
    if (!/^[0-9a-zA-Z-]{1,127}$/.test(name)) {
      return sendKvError(reply, 400, 'BadParameter', `The request URI contains an invalid name: ${name}`)
    }
    const body = request.body ?? {}
    if (typeof body.value !== 'string') {
      return sendKvError(reply, 400, 'BadParameter', 'Property value is required.')
    }
    const attributes = body.attributes ?? {}
    const secret = state.setSecret(vault, name, body.value, {
      enabled: attributes.enabled ?? true,
      ...(attributes.exp !== undefined && { expires: new Date(attributes.exp * 1000) }),
      ...(attributes.nbf !== undefined && { notBefore: new Date(attributes.nbf * 1000) }),
      ...(body.contentType && { contentType: body.contentType }),
      ...(body.tags && { tags: body.tags }),
    })
    return bundle(name, secret, true)
  })
}
