// The {"error":{"code","message"}} envelope ARM (and Key Vault) answer with: thrown from handlers and
// rendered by the shared pipeline's error handler, with any headers it needs (x-ms-failure-cause, Retry-After).

export class ArmError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Record<string, string>

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
  }
}

export function resourceNotFound(type: string, name: string, resourceGroup: string): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    { 'x-ms-failure-cause': 'gateway' },
  )
}
