// @ipam-broker/client: the generated types and SDK functions for the broker's API (src/generated/, from
// openapi/openapi.json), and a client that adds what every caller needs: bearer tokens from an Azure
// credential, an Idempotency-Key per call, retries, problem details as errors and waiting for operations.
export * from './generated/index.ts'
export {
  type BrokerClient,
  type BrokerClientOptions,
  type CallOptions,
  createBrokerClient,
  IDEMPOTENT_ROUTES,
  type SubmitOptions,
} from './client.ts'
export { BrokerProblemError, type ProblemDetails } from './problem.ts'
export type { RetryOptions } from './retry.ts'
export { type AccessToken, DEFAULT_SCOPES, type TokenCredential, type TokenProvider } from './tokens.ts'
export { OperationTimeoutError, type WaitOptions } from './wait.ts'
