/**
 * A failure the caller can act on. The HTTP layer renders it as RFC 9457 problem details with
 * `code` as a stable, machine-readable key.
 */
export class ProblemError extends Error {
  override name = 'ProblemError'
  readonly status: number
  readonly code: string
  readonly title: string
  readonly extensions: Record<string, unknown>

  constructor(status: number, code: string, title: string, detail: string, extensions: Record<string, unknown> = {}) {
    super(detail)
    this.status = status
    this.code = code
    this.title = title
    this.extensions = extensions
  }
}
