/** RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457): the broker answers every error with one. */
export interface ProblemDetails {
  type: string
  title: string
  status: number
  detail?: string
  instance?: string
  [extension: string]: unknown
}

const MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance'])

/** A non-2xx answer from the broker, carrying its problem details. */
export class BrokerProblemError extends Error {
  override name = 'BrokerProblemError'
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string | undefined
  readonly instance: string | undefined
  /** The broker's stable, machine-readable error code (an extension member). */
  readonly code: string | undefined
  /** The broker's request id, to quote to whoever runs it (an extension member). */
  readonly requestId: string | undefined
  /** Every member beyond the five of RFC 9457: `code`, `requestId`, `errors` (failing fields)… */
  readonly extensions: Readonly<Record<string, unknown>>
  /** The whole document as received. */
  readonly problem: ProblemDetails

  constructor(problem: ProblemDetails) {
    super(`${problem.title} (${problem.status})${problem.detail ? `: ${problem.detail}` : ''}`)
    this.problem = problem
    this.type = problem.type
    this.title = problem.title
    this.status = problem.status
    this.detail = problem.detail
    this.instance = problem.instance
    this.extensions = Object.fromEntries(Object.entries(problem).filter(([key]) => !MEMBERS.has(key)))
    this.code = typeof problem['code'] === 'string' ? problem['code'] : undefined
    this.requestId = typeof problem['requestId'] === 'string' ? problem['requestId'] : undefined
  }

  /**
   * From an error answer and its parsed body. Something between the caller and the broker (a gateway's 502,
   * a proxy's HTML page) may answer without problem details: its status and text become one.
   */
  static fromResponse(response: Response, body: unknown): BrokerProblemError {
    if (isProblem(body)) {
      const type = typeof body['type'] === 'string' ? body['type'] : 'about:blank'
      return new BrokerProblemError({ ...body, type, title: body.title, status: response.status })
    }
    const text = typeof body === 'string' ? body.trim() : ''
    return new BrokerProblemError({
      type: 'about:blank',
      title: response.statusText || `HTTP ${response.status}`,
      status: response.status,
      ...(text && { detail: text.slice(0, 500) }),
    })
  }
}

function isProblem(body: unknown): body is { title: string; [member: string]: unknown } {
  return typeof body === 'object' && body !== null && typeof (body as { title?: unknown }).title === 'string'
}
