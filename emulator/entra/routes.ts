import formbody from '@fastify/formbody'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { createPublicKey } from 'node:crypto'
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose'
import type { Application, EmulatorState } from '../state.ts'
import { sendAadError } from './errors.ts'
import { TOKEN_LIFETIME_SECONDS, type TokenIssuer } from './tokens.ts'

// Entra ID (the login endpoint): OpenID discovery (v1 and v2), signing keys, and the
// client-credentials token endpoint with Entra's multi-tenant rules and errors.

export const ARM_AUDIENCES = [
  'https://management.azure.com',
  'https://management.azure.com/',
  'https://management.core.windows.net',
  'https://management.core.windows.net/',
]
export const VAULT_AUDIENCES = ['https://vault.azure.net', 'https://vault.azure.net/']
export const GRAPH_AUDIENCES = [
  'https://graph.microsoft.com',
  'https://graph.microsoft.com/',
  '00000003-0000-0000-c000-000000000000',
]
const WELL_KNOWN_AUDIENCES = new Set([...ARM_AUDIENCES, ...VAULT_AUDIENCES, ...GRAPH_AUDIENCES])

/** Tenant-independent authorities accept any tenant's tokens; their documents carry a {tenantid} placeholder. */
const MULTI_TENANT_AUTHORITIES = new Set(['common', 'organizations'])

export const v1Issuer = (tenantId: string) => `https://sts.windows.net/${tenantId}/`

/** The scheme and host the caller used: endpoints in discovery documents point back to it. */
export const originOf = (request: FastifyRequest) => `${request.protocol}://${request.host}`

/**
 * Audiences a Graph token may carry: Graph's own, and this emulator's origin, which is what a client
 * asks for when its cloud's Microsoft Graph endpoint is the emulator (az cloud register).
 */
export const graphAudiences = (request: FastifyRequest) => [
  ...GRAPH_AUDIENCES,
  originOf(request),
  `${originOf(request)}/`,
]

export interface EntraOptions {
  state: EmulatorState
  issuer: TokenIssuer
  baseUrl: () => string
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

interface Refusal {
  code: number
  description: string
}

/**
 * The client proves itself with a client secret, or with a JWT assertion signed by one of its
 * registered certificates (named by its x5t or x5t#S256 thumbprint), as MSAL sends it.
 */
async function authenticateClient(
  request: FastifyRequest,
  app: Application,
  tenant: string,
  form: Record<string, string | undefined>,
  now = new Date(),
): Promise<Refusal | undefined> {
  const clientId = app.appId
  const assertion = form['client_assertion']
  if (form['client_assertion_type'] === JWT_BEARER && assertion) {
    let header
    try {
      header = decodeProtectedHeader(assertion)
    } catch {
      return { code: 50027, description: 'JWT token is invalid or malformed.' }
    }
    const named = header['x5t#S256'] ?? header.x5t
    const thumbprint = typeof named === 'string' ? named : ''
    const certificate = app.certificates.find((c) => c.sha256 === thumbprint || c.sha1 === thumbprint)
    if (!certificate) {
      return {
        code: 700027,
        description: `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'.]`,
      }
    }
    try {
      await jwtVerify(assertion, createPublicKey(certificate.certificatePem), {
        algorithms: ['RS256', 'PS256'],
        audience: `${originOf(request)}/${tenant}/oauth2/v2.0/token`,
        issuer: clientId,
        subject: clientId,
        currentDate: now,
        // MSAL rounds nbf to the nearest second, and Entra allows clients a few minutes of clock skew.
        clockTolerance: 300,
      })
      return undefined
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        return { code: 700024, description: 'Client assertion is not within its valid time range.' }
      }
      return { code: 700027, description: 'Client assertion failed signature validation.' }
    }
  }
  const secret = form['client_secret']
  if (!secret) {
    return {
      code: 7000216,
      description:
        "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
    }
  }
  const password = app.passwords.find((p) => p.secretText === secret)
  if (!password) {
    return {
      code: 7000215,
      description: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
    }
  }
  if (password.endDateTime <= now) {
    return { code: 7000222, description: `The provided client secret keys for app '${clientId}' are expired.` }
  }
  return undefined
}

export async function entraRoutes(app: FastifyInstance, { state, issuer, baseUrl }: EntraOptions) {
  await app.register(formbody)

  const knownAuthority = (tenant: string) => MULTI_TENANT_AUTHORITIES.has(tenant) || state.tenants.has(tenant)
  const unknownTenant = (request: FastifyRequest, reply: FastifyReply, tenant: string) =>
    sendAadError(
      request,
      reply,
      400,
      'invalid_tenant',
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    )

  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/.well-known/openid-configuration', async (request, reply) => {
    const { tenant } = request.params
    if (!knownAuthority(tenant)) return unknownTenant(request, reply, tenant)
    const base = originOf(request)
    const issuerTenant = MULTI_TENANT_AUTHORITIES.has(tenant) ? '{tenantid}' : tenant
    return {
      token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${base}/${issuerTenant}/v2.0`,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid', 'appid', 'azp', 'roles'],
      tenant_region_scope: null,
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    }
  })

  app.get<{ Params: { tenant: string } }>('/:tenant/.well-known/openid-configuration', async (request, reply) => {
    const { tenant } = request.params
    if (!knownAuthority(tenant)) return unknownTenant(request, reply, tenant)
    const base = originOf(request)
    return {
      token_endpoint: `${base}/${tenant}/oauth2/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/common/discovery/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
      scopes_supported: ['openid'],
      issuer: MULTI_TENANT_AUTHORITIES.has(tenant) ? 'https://sts.windows.net/{tenantid}/' : v1Issuer(tenant),
      authorization_endpoint: `${base}/${tenant}/oauth2/authorize`,
      device_authorization_endpoint: `${base}/${tenant}/oauth2/devicecode`,
      end_session_endpoint: `${base}/${tenant}/oauth2/logout`,
      tenant_region_scope: null,
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    }
  })

  for (const path of ['/:tenant/discovery/v2.0/keys', '/:tenant/discovery/keys']) {
    app.get(path, async () => issuer.jwks())
  }

  app.post<{ Params: { tenant: string }; Body: Record<string, string | undefined> }>(
    '/:tenant/oauth2/v2.0/token',
    async (request, reply) => {
      const { tenant } = request.params
      const form = request.body ?? {}
      if (!state.tenants.has(tenant)) {
        return sendAadError(
          request,
          reply,
          400,
          'invalid_request',
          90002,
          `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        )
      }
      if (form['grant_type'] !== 'client_credentials') {
        return sendAadError(
          request,
          reply,
          400,
          'unsupported_grant_type',
          70003,
          `The app requested an unsupported grant type '${form['grant_type'] ?? ''}'.`,
        )
      }
      const clientId = form['client_id']
      if (!clientId) {
        return sendAadError(
          request,
          reply,
          400,
          'invalid_request',
          900144,
          "The request body must contain the following parameter: 'client_id'.",
        )
      }
      const app = state.applications.get(clientId)
      const sp = state.servicePrincipal(clientId, tenant)
      const allowedHere = app && sp && (app.homeTenantId === tenant || app.signInAudience === 'AzureADMultipleOrgs')
      if (!app || !allowedHere) {
        return sendAadError(
          request,
          reply,
          400,
          'unauthorized_client',
          700016,
          `Application with identifier '${clientId}' was not found in the directory '${state.tenants.get(tenant)?.displayName ?? tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
        )
      }
      const refusal = await authenticateClient(request, app, tenant, form, state.now())
      if (refusal) return sendAadError(request, reply, 401, 'invalid_client', refusal.code, refusal.description)
      const scope = form['scope'] ?? ''
      if (!scope.endsWith('/.default') || scope.includes(' ')) {
        return sendAadError(
          request,
          reply,
          400,
          'invalid_scope',
          1002012,
          `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
        )
      }
      const resource = scope.slice(0, -'/.default'.length)
      state.count(state.counters.tokenRequests, `${tenant}/${clientId}`)
      const identity = { tid: tenant, oid: sp.objectId, sub: sp.objectId, appid: clientId, idtyp: 'app' as const }

      let accessToken: string
      if (WELL_KNOWN_AUDIENCES.has(resource) || graphAudiences(request).includes(resource)) {
        accessToken = await issuer.sign({ ...identity, aud: resource, iss: v1Issuer(tenant), ver: '1.0' })
      } else {
        // An API registered in Entra (the broker's own): v2 token, audience its appId, roles from assignments.
        const api = [...state.applications.values()].find(
          (candidate) => candidate.appId === resource || candidate.identifierUris.includes(resource),
        )
        if (!api || !state.servicePrincipal(api.appId, tenant)) {
          return sendAadError(
            request,
            reply,
            400,
            'invalid_resource',
            500011,
            `The resource principal named ${resource} was not found in the tenant named ${state.tenants.get(tenant)?.displayName ?? tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
          )
        }
        const roles = state.appRoleAssignments
          .filter((a) => a.clientAppId === clientId && a.resourceAppId === api.appId)
          .flatMap((a) => a.roles)
        accessToken = await issuer.sign({
          ...identity,
          aud: api.appId,
          iss: `${baseUrl()}/${tenant}/v2.0`,
          azp: clientId,
          ver: '2.0',
          ...(roles.length && { roles }),
        })
      }
      return reply.header('cache-control', 'no-store, no-cache').send({
        token_type: 'Bearer',
        expires_in: TOKEN_LIFETIME_SECONDS,
        ext_expires_in: TOKEN_LIFETIME_SECONDS,
        access_token: accessToken,
      })
    },
  )
}
