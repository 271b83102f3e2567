import type { Operation } from './generated/index.ts'
import { sleep } from './retry.ts'

export interface WaitOptions {
  /** Give up after this long, rejecting with an OperationTimeoutError. Default 15 minutes. */
  timeoutMs?: number
  /** Stop waiting when it aborts, rejecting with its reason. */
  signal?: AbortSignal
  /** Called with the operation each time it is read, the final read included. */
  onProgress?: (operation: Operation) => void
  /** How long each long poll asks the broker to hold the answer (`?wait=`; it caps it at WAIT_MAX_SECONDS). Default 30. */
  pollSeconds?: number
}

/** The operation was still queued or running when the wait ran out. */
export class OperationTimeoutError extends Error {
  override name = 'OperationTimeoutError'
  readonly operationId: string
  /** The last state read, if any read came back. */
  readonly operation: Operation | undefined

  constructor(operationId: string, timeoutMs: number, operation: Operation | undefined) {
    super(
      `operation ${operationId} did not finish within ${timeoutMs} ms` +
        (operation ? ` (last seen ${operation.state})` : ''),
    )
    this.operationId = operationId
    this.operation = operation
  }
}

export const finished = (operation: Operation): boolean =>
  operation.state === 'succeeded' || operation.state === 'failed'

type ReadOperation = (id: string, wait: number, signal: AbortSignal) => Promise<Operation>

// A broker whose WAIT_MAX_SECONDS is low answers long polls at once: pause between reads rather than spin.
const MIN_POLL_INTERVAL_MS = 1000
const MAX_PAUSE_MS = 5000
const MAX_TIMEOUT_MS = 2 ** 31 - 1
// The broker refuses a longer `?wait=` (and caps it at its own WAIT_MAX_SECONDS).
const MAX_POLL_SECONDS = 300

/** Long-polls GET /v1/operations/{id}?wait= until the operation succeeds or fails, and resolves with it. */
export async function waitFor(
  read: ReadOperation,
  operation: string | Operation,
  { timeoutMs = 15 * 60_000, signal, onProgress, pollSeconds = 30 }: WaitOptions = {},
): Promise<Operation> {
  // Node's timers fire at once beyond 2^31-1 ms, which would turn a "wait for days" into no wait at all.
  if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS))
    throw new RangeError(`timeoutMs must be between 1 and ${MAX_TIMEOUT_MS}, not ${timeoutMs}`)
  const id = typeof operation === 'string' ? operation : operation.id
  let current = typeof operation === 'string' ? undefined : operation
  if (current && finished(current)) return current
  const timeout = AbortSignal.timeout(timeoutMs)
  const stop = signal ? AbortSignal.any([signal, timeout]) : timeout
  const deadline = Date.now() + timeoutMs
  let pause = 250
  try {
    for (;;) {
      const started = Date.now()
      const wait = Math.floor(Math.max(0, Math.min(pollSeconds, MAX_POLL_SECONDS, (deadline - started) / 1000)))
      current = await read(id, wait, stop)
      onProgress?.(current)
      if (finished(current)) return current
      if (Date.now() - started < MIN_POLL_INTERVAL_MS) {
        await sleep(pause, stop)
        pause = Math.min(pause * 2, MAX_PAUSE_MS)
      }
    }
  } catch (error) {
    if (signal?.aborted) throw signal.reason
    if (timeout.aborted) throw new OperationTimeoutError(id, timeoutMs, current)
    throw error
  }
}
