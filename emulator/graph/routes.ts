import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { graphAudiences } from '../entra/routes.ts'
import { type AccessTokenClaims, type TokenIssuer, TokenRejected } from '../entra/tokens.ts'
import type { Application, EmulatorState, PasswordCredential, ServicePrincipal, SignInAudience } from '../state.ts'

// Microsoft Graph v1.0, as much of it as app registration needs: applications (read, update of
// signInAudience / displayName / identifierUris, addPassword / removePassword) and service principals
// (list, read, create — the admin consent of a multi-tenant app in another tenant). Everything is
// seen from the caller's tenant, the `tid` of a Graph token: applications of that home tenant only,
// service principals of that tenant only. There is no Graph permission model: any valid Graph token
// of a tenant acts as an administrator (Application.ReadWrite.All) of it.

const GRAPH_ROOT = 'https://graph.microsoft.com/v1.0'
const SIGN_IN_AUDIENCES: readonly SignInAudience[] = ['AzureADMyOrg', 'AzureADMultipleOrgs']
const ODATA_CONTENT_TYPE =
  'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'

export interface GraphOptions {
  state: EmulatorState
  issuer: TokenIssuer
}

/** Graph's {"error":{"code","message","innerError"}} answer, rendered by the plugin's error handler. */
export class GraphError extends Error {
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

const notFound = (id: string) =>
  new GraphError(
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  )

const badRequest = (message: string) => new GraphError(400, 'Request_BadRequest', message)

const invalidValue = (property: string, resource: string) =>
  badRequest(`Invalid value specified for property '${property}' of resource '${resource}'.`)

const notAValidApplication = (appId: string) =>
  badRequest(`The appId '${appId}' of the service principal does not reference a valid application object.`)

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A name-based (v5-style) UUID, so that an app role keeps its id across restarts. */
export function stableUuid(name: string): string {
  const hash = createHash('sha1').update(name).digest()
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

function graphDate(date: Date): string {
  return date.toISOString()
}

function passwordJson(password: PasswordCredential) {
  return {
    customKeyIdentifier: null,
    displayName: password.displayName,
    endDateTime: graphDate(password.endDateTime),
    hint: password.hint,
    keyId: password.keyId,
    secretText: null,
  }
}

function appRolesJson(app: Application) {
  return app.appRoles.map((value) => ({
    allowedMemberTypes: ['Application'],
    description: value,
    displayName: value,
    id: stableUuid(`${app.appId}/${value}`),
    isEnabled: true,
    origin: 'Application',
    value,
  }))
}

function applicationJson(app: Application) {
  return {
    id: app.objectId,
    appId: app.appId,
    displayName: app.displayName,
    signInAudience: app.signInAudience,
    identifierUris: [...app.identifierUris],
    passwordCredentials: app.passwords.map(passwordJson),
    keyCredentials: [],
    appRoles: appRolesJson(app),
  }
}

function servicePrincipalJson(sp: ServicePrincipal, app: Application | undefined) {
  return {
    id: sp.objectId,
    appId: sp.appId,
    displayName: app?.displayName ?? sp.appId,
    appDisplayName: app?.displayName ?? null,
    appOwnerOrganizationId: app?.homeTenantId ?? null,
    servicePrincipalType: 'Application',
    accountEnabled: true,
    signInAudience: app?.signInAudience ?? null,
    servicePrincipalNames: [sp.appId, ...(app?.identifierUris ?? [])],
    appRoles: app ? appRolesJson(app) : [],
    passwordCredentials: [],
    keyCredentials: [],
  }
}

// --- $filter: the handful of clauses the Azure CLI and the SDKs send, joined by `and` ---

interface Filterable {
  id: string
  appId: string
  displayName: string
  identifierUris?: string[]
  servicePrincipalNames?: string[]
}

type Predicate = (item: Filterable) => boolean

const unquote = (literal: string) => literal.replaceAll("''", "'").toLowerCase()

function parseClause(clause: string): Predicate | undefined {
  let match = /^(id|appId|displayName)\s+eq\s+'((?:[^']|'')*)'$/i.exec(clause)
  if (match) {
    const property = match[1]!.toLowerCase()
    const value = unquote(match[2]!)
    const pick = (item: Filterable) =>
      property === 'id' ? item.id : property === 'appid' ? item.appId : item.displayName
    return (item) => pick(item).toLowerCase() === value
  }
  match = /^startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)$/i.exec(clause)
  if (match) {
    const prefix = unquote(match[1]!)
    return (item) => item.displayName.toLowerCase().startsWith(prefix)
  }
  match = /^(identifierUris|servicePrincipalNames)\/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*\)$/i.exec(
    clause,
  )
  if (match && match[2] === match[3]) {
    const property = match[1]!.toLowerCase() === 'identifieruris' ? 'identifierUris' : 'servicePrincipalNames'
    const value = unquote(match[4]!)
    return (item) => (item[property] ?? []).some((candidate) => candidate.toLowerCase() === value)
  }
  return undefined
}

function parseFilter(filter: unknown): Predicate {
  if (filter === undefined || filter === '') return () => true
  if (typeof filter !== 'string') throw badRequest('Invalid $filter: only one $filter query option is allowed.')
  const predicates = filter
    .trim()
    .split(/\s+and\s+/i)
    .map((clause) => {
      const predicate = parseClause(clause.trim())
      if (!predicate) {
        throw new GraphError(
          400,
          'Request_UnsupportedQuery',
          `Unsupported or invalid query filter clause specified: '${clause}'. The emulator supports "appId eq '…'", "id eq '…'", "displayName eq '…'", "startswith(displayName,'…')", "identifierUris/any(x:x eq '…')" and "servicePrincipalNames/any(x:x eq '…')", joined by "and".`,
        )
      }
      return predicate
    })
  return (item) => predicates.every((predicate) => predicate(item))
}

/** `applications(appId='…')` or `servicePrincipals(appId='…')`: Graph's alternate key. */
function alternateKey(
  segment: string,
): { collection: 'applications' | 'servicePrincipals'; appId: string } | undefined {
  const match = /^(applications|servicePrincipals)\(appId='([^']*)'\)$/.exec(segment)
  return match ? { collection: match[1] as 'applications' | 'servicePrincipals', appId: match[2]! } : undefined
}

export async function graphRoutes(app: FastifyInstance, { state, issuer }: GraphOptions) {
  const callers = new WeakMap<FastifyRequest, AccessTokenClaims>()
  const tenantOf = (request: FastifyRequest): string => {
    const claims = callers.get(request)
    if (!claims) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.')
    return claims.tid
  }

  const findApplication = (appId: string): Application | undefined =>
    state.applications.get(appId) ??
    [...state.applications.values()].find((candidate) => candidate.appId.toLowerCase() === appId.toLowerCase())

  /** An application object of the caller's tenant, by object id or (`byAppId`) by appId. */
  const ownApplication = (tenant: string, id: string, byAppId = false): Application => {
    const found = byAppId
      ? findApplication(id)
      : [...state.applications.values()].find((candidate) => candidate.objectId.toLowerCase() === id.toLowerCase())
    if (!found || found.homeTenantId !== tenant) throw notFound(id)
    return found
  }

  const applicationFromSegment = (tenant: string, segment: string): Application => {
    const key = alternateKey(segment)
    if (key?.collection !== 'applications') throw notFound(segment)
    return ownApplication(tenant, key.appId, true)
  }

  const filterable = (application: Application): Filterable => ({
    id: application.objectId,
    appId: application.appId,
    displayName: application.displayName,
    identifierUris: application.identifierUris,
  })

  const spFilterable = (sp: ServicePrincipal): Filterable => {
    const owner = findApplication(sp.appId)
    return {
      id: sp.objectId,
      appId: sp.appId,
      displayName: owner?.displayName ?? sp.appId,
      servicePrincipalNames: [sp.appId, ...(owner?.identifierUris ?? [])],
    }
  }

  const entity = (collection: string, body: object) => ({
    '@odata.context': `${GRAPH_ROOT}/$metadata#${collection}/$entity`,
    ...body,
  })

  const collection = (name: string, value: unknown[]) => ({
    '@odata.context': `${GRAPH_ROOT}/$metadata#${name}`,
    value,
  })

  app.addHook('onRequest', async (request, reply) => {
    const requestId = reply.getHeader('x-ms-request-id')
    const clientRequestId = request.headers['client-request-id']
    reply.header('request-id', typeof requestId === 'string' ? requestId : randomUUID())
    reply.header('client-request-id', typeof clientRequestId === 'string' ? clientRequestId : randomUUID())
  })

  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization
    const token = header?.match(/^Bearer\s+(\S+)$/i)?.[1]
    if (!token) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.')
    let claims: AccessTokenClaims
    try {
      claims = await issuer.verify(token, graphAudiences(request))
    } catch (err) {
      const problem = err instanceof TokenRejected ? err.problem : 'malformed'
      const message = {
        malformed: 'CompactToken parsing failed with error code: 80049217',
        signature: 'Access token validation failure.',
        expired: 'Lifetime validation failed, the token is expired.',
        'not-yet-valid': 'Lifetime validation failed, the token is not yet valid.',
        audience: 'Access token validation failure. Invalid audience.',
      }[problem]
      throw new GraphError(401, 'InvalidAuthenticationToken', message)
    }
    if (!state.tenants.has(claims.tid)) {
      throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid issuer.')
    }
    callers.set(request, claims)
  })

  app.setErrorHandler(async (error: { statusCode?: number; message: string }, request, reply) => {
    const graphError =
      error instanceof GraphError
        ? error
        : error.statusCode && error.statusCode < 500
          ? badRequest(error.message)
          : new GraphError(500, 'generalException', 'The emulator failed to process the request.')
    return sendGraphError(request, reply, graphError)
  })

  // --- applications ---

  app.get<{ Querystring: Record<string, unknown> }>('/v1.0/applications', async (request, reply) => {
    const tenant = tenantOf(request)
    const matches = parseFilter(request.query['$filter'])
    const value = [...state.applications.values()]
      .filter((candidate) => candidate.homeTenantId === tenant && matches(filterable(candidate)))
      .map(applicationJson)
    return reply.type(ODATA_CONTENT_TYPE).send(collection('applications', value))
  })

  app.get<{ Params: { id: string } }>('/v1.0/applications/:id', async (request, reply) => {
    const found = ownApplication(tenantOf(request), request.params.id)
    return reply.type(ODATA_CONTENT_TYPE).send(entity('applications', applicationJson(found)))
  })

  const updateApplication = (target: Application, body: unknown) => {
    if (!isRecord(body)) throw badRequest('The request body must be a JSON object.')
    const changes: Partial<Pick<Application, 'displayName' | 'signInAudience' | 'identifierUris'>> = {}
    for (const [property, value] of Object.entries(body)) {
      if (property.startsWith('@odata.')) continue
      switch (property) {
        case 'displayName':
          if (typeof value !== 'string' || !value.trim()) throw invalidValue(property, 'Application')
          changes.displayName = value
          break
        case 'signInAudience':
          if (!SIGN_IN_AUDIENCES.includes(value as SignInAudience)) throw invalidValue(property, 'Application')
          changes.signInAudience = value as SignInAudience
          break
        case 'identifierUris': {
          if (!Array.isArray(value) || !value.every((uri) => typeof uri === 'string' && uri.length > 0)) {
            throw invalidValue(property, 'Application')
          }
          const uris = value as string[]
          const taken = [...state.applications.values()].some(
            (other) => other !== target && other.identifierUris.some((uri) => uris.includes(uri)),
          )
          if (taken) throw badRequest('Another object with the same value for property identifierUris already exists.')
          changes.identifierUris = [...new Set(uris)]
          break
        }
        default:
          throw badRequest(
            `Property '${property}' cannot be updated on the emulator's Graph; it supports displayName, signInAudience and identifierUris.`,
          )
      }
    }
    Object.assign(target, changes)
  }

  app.patch<{ Params: { id: string } }>('/v1.0/applications/:id', async (request, reply) => {
    updateApplication(ownApplication(tenantOf(request), request.params.id), request.body)
    return reply.code(204).send()
  })

  const addPassword = (target: Application, body: unknown) => {
    const requested = isRecord(body) && body['passwordCredential'] !== undefined ? body['passwordCredential'] : {}
    if (!isRecord(requested)) throw invalidValue('passwordCredential', 'addPassword')
    const { displayName, endDateTime } = requested
    if (displayName !== undefined && displayName !== null && typeof displayName !== 'string') {
      throw invalidValue('displayName', 'PasswordCredential')
    }
    let end: Date | undefined
    if (endDateTime !== undefined && endDateTime !== null) {
      end = typeof endDateTime === 'string' ? new Date(endDateTime) : new Date(NaN)
      if (Number.isNaN(end.getTime())) throw invalidValue('endDateTime', 'PasswordCredential')
      if (end <= state.now()) throw badRequest('The endDateTime of a password credential must be in the future.')
    }
    const created = state.addPassword(target, displayName ?? undefined)
    if (end) created.endDateTime = end
    return {
      '@odata.context': `${GRAPH_ROOT}/$metadata#microsoft.graph.passwordCredential`,
      ...passwordJson(created),
      secretText: created.secretText,
      startDateTime: graphDate(state.now()),
    }
  }

  const removePassword = (target: Application, body: unknown) => {
    const keyId = isRecord(body) ? body['keyId'] : undefined
    if (typeof keyId !== 'string') throw invalidValue('keyId', 'removePassword')
    const index = target.passwords.findIndex((password) => password.keyId.toLowerCase() === keyId.toLowerCase())
    if (index < 0) throw badRequest(`No password credential found with keyId '${keyId}'.`)
    target.passwords.splice(index, 1)
  }

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/addPassword', async (request, reply) => {
    const target = ownApplication(tenantOf(request), request.params.id)
    return reply.type(ODATA_CONTENT_TYPE).send(addPassword(target, request.body))
  })

  app.post<{ Params: { id: string } }>('/v1.0/applications/:id/removePassword', async (request, reply) => {
    removePassword(ownApplication(tenantOf(request), request.params.id), request.body)
    return reply.code(204).send()
  })

  // --- the alternate key forms: applications(appId='…'), servicePrincipals(appId='…') ---

  app.get<{ Params: { segment: string } }>('/v1.0/:segment', async (request, reply) => {
    const key = alternateKey(request.params.segment)
    if (!key) return reply.callNotFound()
    const tenant = tenantOf(request)
    if (key.collection === 'applications') {
      const found = ownApplication(tenant, key.appId, true)
      return reply.type(ODATA_CONTENT_TYPE).send(entity('applications', applicationJson(found)))
    }
    const sp = state.servicePrincipals.find(
      (candidate) => candidate.tenantId === tenant && candidate.appId.toLowerCase() === key.appId.toLowerCase(),
    )
    if (!sp) throw notFound(request.params.segment)
    return reply
      .type(ODATA_CONTENT_TYPE)
      .send(entity('servicePrincipals', servicePrincipalJson(sp, findApplication(sp.appId))))
  })

  app.patch<{ Params: { segment: string } }>('/v1.0/:segment', async (request, reply) => {
    if (alternateKey(request.params.segment)?.collection !== 'applications') return reply.callNotFound()
    updateApplication(applicationFromSegment(tenantOf(request), request.params.segment), request.body)
    return reply.code(204).send()
  })

  app.post<{ Params: { segment: string; action: string } }>('/v1.0/:segment/:action', async (request, reply) => {
    const { segment, action } = request.params
    if (alternateKey(segment)?.collection !== 'applications' || !['addPassword', 'removePassword'].includes(action)) {
      return reply.callNotFound()
    }
    const target = applicationFromSegment(tenantOf(request), segment)
    if (action === 'addPassword') return reply.type(ODATA_CONTENT_TYPE).send(addPassword(target, request.body))
    removePassword(target, request.body)
    return reply.code(204).send()
  })

  // --- service principals ---

  app.get<{ Querystring: Record<string, unknown> }>('/v1.0/servicePrincipals', async (request, reply) => {
    const tenant = tenantOf(request)
    const matches = parseFilter(request.query['$filter'])
    const value = state.servicePrincipals
      .filter((sp) => sp.tenantId === tenant && matches(spFilterable(sp)))
      .map((sp) => servicePrincipalJson(sp, findApplication(sp.appId)))
    return reply.type(ODATA_CONTENT_TYPE).send(collection('servicePrincipals', value))
  })

  app.get<{ Params: { id: string } }>('/v1.0/servicePrincipals/:id', async (request, reply) => {
    const tenant = tenantOf(request)
    const { id } = request.params
    const sp = state.servicePrincipals.find(
      (candidate) => candidate.tenantId === tenant && candidate.objectId.toLowerCase() === id.toLowerCase(),
    )
    if (!sp) throw notFound(id)
    return reply
      .type(ODATA_CONTENT_TYPE)
      .send(entity('servicePrincipals', servicePrincipalJson(sp, findApplication(sp.appId))))
  })

  app.post('/v1.0/servicePrincipals', async (request, reply) => {
    const tenant = tenantOf(request)
    const appId = isRecord(request.body) ? request.body['appId'] : undefined
    if (typeof appId !== 'string' || !appId) throw invalidValue('appId', 'ServicePrincipal')
    const target = findApplication(appId)
    // Consent to an app of another tenant needs the app to be multi-tenant; its home tenant always may.
    if (!target || (target.homeTenantId !== tenant && target.signInAudience !== 'AzureADMultipleOrgs')) {
      throw notAValidApplication(appId)
    }
    if (state.servicePrincipal(target.appId, tenant)) {
      throw new GraphError(
        409,
        'Request_MultipleObjectsWithSameKeyValue',
        'Another object with the same value for property servicePrincipalNames already exists.',
      )
    }
    const sp: ServicePrincipal = { objectId: randomUUID(), appId: target.appId, tenantId: tenant }
    state.servicePrincipals.push(sp)
    return reply
      .code(201)
      .header('location', `${GRAPH_ROOT}/servicePrincipals/${sp.objectId}`)
      .type(ODATA_CONTENT_TYPE)
      .send(entity('servicePrincipals', servicePrincipalJson(sp, target)))
  })
}

function sendGraphError(request: FastifyRequest, reply: FastifyReply, error: GraphError) {
  const requestId = reply.getHeader('request-id')
  const clientRequestId = reply.getHeader('client-request-id') ?? request.headers['client-request-id']
  return reply
    .code(error.status)
    .type('application/json; charset=utf-8')
    .send({
      error: {
        code: error.code,
        message: error.message,
        innerError: {
          date: new Date().toISOString().replace(/\.\d+Z$/, ''),
          'request-id': typeof requestId === 'string' ? requestId : randomUUID(),
          'client-request-id': typeof clientRequestId === 'string' ? clientRequestId : randomUUID(),
        },
      },
    })
}
