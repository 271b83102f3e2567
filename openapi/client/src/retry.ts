export interface RetryOptions {
  /** Attempts after the first; 0 turns retrying off. Default 3. */
  maxRetries?: number
  /** First backoff, doubled on each retry, with jitter. Default 500 ms. */
  baseDelayMs?: number
  /** Longest backoff; a Retry-After header is honoured up to a minute. Default 8 s. */
  maxDelayMs?: number
}

// 429 is retried whatever the method: the broker refused the request before acting on it.
const TRANSIENT = new Set([408, 429, 500, 502, 503, 504])
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
const RETRY_AFTER_LIMIT_MS = 60_000

/**
 * `fetch` that retries network errors and transient answers, for requests that are safe to send again:
 * idempotent methods, and POSTs carrying an Idempotency-Key, which the broker answers with the operation
 * the first attempt started. Every attempt sends the same request, key included.
 */
export function retryingFetch(base: typeof fetch, options: RetryOptions = {}): typeof fetch {
  const { maxRetries = 3, baseDelayMs = 500, maxDelayMs = 8000 } = options
  return async (input, init) => {
    const request = new Request(input, init)
    const replayable = IDEMPOTENT_METHODS.has(request.method) || request.headers.has('idempotency-key')
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= maxRetries
      let retryAfter: string | null = null
      try {
        const response = await base(request.clone())
        const transient = response.status === 429 || (replayable && TRANSIENT.has(response.status))
        if (last || !transient) return response
        retryAfter = response.headers.get('retry-after')
        await response.body?.cancel()
      } catch (error) {
        // fetch rejects with a TypeError when the network fails; an abort is the caller's decision.
        if (last || !replayable || request.signal.aborted || !(error instanceof TypeError)) throw error
      }
      const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2)
      await sleep(retryAfterMs(retryAfter) ?? backoff, request.signal)
    }
  }
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined
  const ms = /^\d+$/.test(header) ? Number(header) * 1000 : Date.parse(header) - Date.now()
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), RETRY_AFTER_LIMIT_MS) : undefined
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error)
    const done = () => {
      signal?.removeEventListener('abort', aborted)
      resolve()
    }
    const timer = setTimeout(done, ms)
    const aborted = () => {
      clearTimeout(timer)
      reject(signal!.reason as Error)
    }
    signal?.addEventListener('abort', aborted, { once: true })
  })
}
