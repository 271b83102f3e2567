import { type Client, createClient, createConfig } from './generated/client/index.ts'
import * as sdk from './generated/sdk.gen.ts'
import type {
  ListVnetsData,
  Operation,
  VnetAssociation,
  VnetList,
  VnetRequest,
  VnetWithLiveState,
} from './generated/types.gen.ts'
import { BrokerProblemError } from './problem.ts'
import { retryingFetch, type RetryOptions } from './retry.ts'
import {
  type BearerTokens,
  credentialTokens,
  DEFAULT_SCOPES,
  providedTokens,
  type TokenCredential,
  type TokenProvider,
} from './tokens.ts'
import { waitFor, type WaitOptions } from './wait.ts'

interface CommonOptions {
  /** Where the broker listens, e.g. `https://ipam-broker.contoso.net`. */
  baseUrl: string
  /** `fetch` to send requests with (a proxy agent, a test double). Default: the global fetch. */
  fetch?: typeof fetch
  /** Retries of network errors and transient answers (408, 429, 5xx); `false` sends each request once. */
  retry?: RetryOptions | false
  /** Headers sent with every request, e.g. a user agent naming the calling service. */
  headers?: Record<string, string>
}

export type BrokerClientOptions = CommonOptions &
  (
    | {
        /** An @azure/identity credential, or anything with its `getToken`; tokens are cached until 2 min before they expire. */
        credential: TokenCredential
        /** Scopes asked of the credential: the broker API's app id URI + `/.default`. Default `api://ipam-broker/.default`. */
        scopes?: string | readonly string[]
        getToken?: never
      }
    | {
        /** Returns a bearer token for the broker's API; asked before every request that needs one. */
        getToken: TokenProvider
        credential?: never
        scopes?: never
      }
  )

/** Options of one call. */
export interface CallOptions {
  signal?: AbortSignal
}

/** Options of a call that starts an operation. */
export interface SubmitOptions extends CallOptions {
  /** Your own Idempotency-Key (1-255 visible ASCII characters); a fresh UUID per call by default. */
  idempotencyKey?: string
  /** Seconds the broker may hold the answer until the operation finishes (`?wait=`). Default 0: answer at once. */
  wait?: number
}

export interface BrokerClient {
  /**
   * The configured client (token, Idempotency-Key, retries, BrokerProblemError) for every generated SDK function:
   * `await listGrants({ client: broker.client, query: { principalId } })`.
   */
  readonly client: Client
  /** POST /v1/vnets: starts deploying a VNet; the operation comes back queued (or finished, with `wait`). */
  createVnet(request: VnetRequest, options?: SubmitOptions): Promise<Operation>
  /** POST /v1/vnets/associate: moves an existing VNet's address space onto IPAM pool allocations. */
  associateVnet(request: VnetAssociation, options?: SubmitOptions): Promise<Operation>
  /** DELETE /v1/vnets/{id}: gives the addresses back, keeping the VNet (`release`) or deleting it (`delete`). */
  removeVnet(id: string, mode: 'release' | 'delete', options?: SubmitOptions): Promise<Operation>
  /** GET /v1/vnets/{id}: the broker's record beside the VNet's live state in ARM. */
  getVnet(id: string, options?: CallOptions): Promise<VnetWithLiveState>
  /** GET /v1/vnets: the broker's VNet records, newest first. */
  listVnets(query?: Partial<ListVnetsData['query']>, options?: CallOptions): Promise<VnetList>
  /** GET /v1/operations/{id}, holding the answer up to `wait` seconds until the operation finishes. */
  getOperation(id: string, options?: CallOptions & { wait?: number }): Promise<Operation>
  /**
   * Resolves with the operation once it has succeeded or failed (check `state`; a failure carries `error`
   * with ARM's code and advice). Rejects with OperationTimeoutError, or the signal's reason on abort.
   */
  waitForOperation(operation: string | Operation, options?: WaitOptions): Promise<Operation>
}

/**
 * The routes whose operations declare an Idempotency-Key header: the client sends a fresh key with each
 * call (reused by its own retries). test/openapi.test.ts keeps this list in step with openapi.json.
 */
export const IDEMPOTENT_ROUTES: ReadonlySet<string> = new Set([
  'POST /v1/vnets',
  'POST /v1/vnets/associate',
  'DELETE /v1/vnets/{id}',
])

export function createBrokerClient(options: BrokerClientOptions): BrokerClient {
  const tokens = bearerTokens(options)
  const send = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
  const client = createClient(
    createConfig({
      baseUrl: options.baseUrl,
      fetch: options.retry === false ? send : retryingFetch(send, options.retry),
      auth: () => tokens.get(),
      ...(options.headers && { headers: options.headers }),
      throwOnError: true,
    }),
  )
  // Before the retries (inside fetch), so every attempt of one call carries the same key.
  client.interceptors.request.use((request, { method = 'GET', url }) => {
    if (IDEMPOTENT_ROUTES.has(`${method.toUpperCase()} ${url}`) && !request.headers.has('idempotency-key'))
      request.headers.set('idempotency-key', globalThis.crypto.randomUUID())
    return request
  })
  client.interceptors.response.use((response) => {
    if (response.status === 401) tokens.invalidate()
    return response
  })
  client.interceptors.error.use((error, response) =>
    response && !response.ok ? BrokerProblemError.fromResponse(response, error) : error,
  )

  const submit = ({ idempotencyKey, wait, signal }: SubmitOptions = {}) => ({
    ...(idempotencyKey !== undefined && { headers: { 'idempotency-key': idempotencyKey } }),
    ...(wait !== undefined && { query: { wait } }),
    ...(signal && { signal }),
  })
  const getOperation: BrokerClient['getOperation'] = async (id, { wait, signal } = {}) =>
    (
      await sdk.getOperation({
        client,
        path: { id },
        ...(wait !== undefined && { query: { wait } }),
        ...(signal && { signal }),
      })
    ).data

  return {
    client,
    createVnet: async (body, options) => (await sdk.createVnet({ client, body, ...submit(options) })).data,
    associateVnet: async (body, options) => (await sdk.associateVnet({ client, body, ...submit(options) })).data,
    removeVnet: async (id, mode, options = {}) => {
      const { query, ...rest } = submit(options)
      return (await sdk.removeVnet({ client, path: { id }, ...rest, query: { mode, ...query } })).data
    },
    getVnet: async (id, { signal } = {}) =>
      (await sdk.getVnet({ client, path: { id }, ...(signal && { signal }) })).data,
    listVnets: async (query, { signal } = {}) =>
      (await sdk.listVnets({ client, query: { limit: 100, ...query }, ...(signal && { signal }) })).data,
    getOperation,
    waitForOperation: (operation, waitOptions) =>
      waitFor((id, wait, signal) => getOperation(id, { wait, signal }), operation, waitOptions),
  }
}

function bearerTokens(options: BrokerClientOptions): BearerTokens {
  if (options.credential) {
    const scopes = options.scopes ?? DEFAULT_SCOPES
    return credentialTokens(options.credential, typeof scopes === 'string' ? [scopes] : scopes)
  }
  if (options.getToken) return providedTokens(options.getToken)
  throw new TypeError('createBrokerClient needs a credential (e.g. DefaultAzureCredential) or getToken')
}
