import { fromPrisma, type Job, PgBoss } from 'pg-boss'
import type { Logger } from 'pino'
import type { TransactionClient } from './client.ts'
import { SubscriptionSlots } from './subscription-slots.ts'

// Operations run from a Postgres job queue (pg-boss): jobs are claimed with SKIP LOCKED, so any
// number of broker processes share the work; a job whose process died stops heartbeating and is
// claimed again; a group per managed subscription bounds ARM writes across all processes.

export const OPERATIONS_QUEUE = 'operations'

export interface OperationJob {
  operationId: string
}

export interface JobQueueOptions {
  connectionString: string
  schema: string
  log: Logger
  /** Transient failures retried with exponential backoff before the operation is given up. */
  retryLimit: number
  /** A claimed job must heartbeat this often, or it is handed to another worker (process died). */
  heartbeatSeconds?: number
  superviseIntervalSeconds?: number
}

export interface WorkOptions {
  concurrency: number
  /** Jobs running at once per group (managed subscription), counted across every process. */
  groupConcurrency: number
}

export class JobQueue {
  readonly #boss: PgBoss
  readonly #options: JobQueueOptions
  readonly #slots: SubscriptionSlots[] = []

  private constructor(boss: PgBoss, options: JobQueueOptions) {
    this.#boss = boss
    this.#options = options
  }

  static async start(options: JobQueueOptions): Promise<JobQueue> {
    const log = options.log.child({ module: 'job-queue' })
    const boss = new PgBoss({
      connectionString: options.connectionString,
      schema: options.schema,
      application_name: 'ipam-broker-jobs',
      max: 4,
      useListenNotify: true,
      // How soon a job whose process stopped heartbeating is found and handed on (both timers gate it).
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 5,
      monitorIntervalSeconds: options.superviseIntervalSeconds ?? 5,
    })
    boss.on('error', (err) => log.error({ err }, 'job queue error'))
    await boss.start()
    await boss.createQueue(OPERATIONS_QUEUE, {
      retryLimit: options.retryLimit,
      retryDelay: 2,
      retryBackoff: true,
      retryDelayMax: 120,
      heartbeatSeconds: options.heartbeatSeconds ?? 10,
      expireInSeconds: 3600,
      notify: true,
    })
    return new JobQueue(boss, options)
  }

  /**
   * Enqueues an operation inside the caller's transaction, so the operation and its job commit
   * together. The job id is the operation id: enqueuing twice is harmless.
   */
  async enqueue(tx: TransactionClient, operationId: string, subscriptionId: string): Promise<void> {
    await this.#boss.send(OPERATIONS_QUEUE, { operationId } satisfies OperationJob, {
      id: operationId,
      group: { id: subscriptionId.toLowerCase() },
      db: fromPrisma(tx),
    })
  }

  /** Enqueues outside any transaction (recovery of an operation whose job is gone); a no-op if it exists. */
  async ensureQueued(operationId: string, subscriptionId: string): Promise<void> {
    await this.#boss.send(OPERATIONS_QUEUE, { operationId } satisfies OperationJob, {
      id: operationId,
      group: { id: subscriptionId.toLowerCase() },
    })
  }

  async work(
    { concurrency, groupConcurrency }: WorkOptions,
    handler: (job: Job<OperationJob>, attempt: { retryCount: number; retryLimit: number }) => Promise<void>,
  ): Promise<void> {
    const slots = new SubscriptionSlots({
      connectionString: this.#options.connectionString,
      limit: groupConcurrency,
      connections: concurrency,
    })
    this.#slots.push(slots)
    await this.#boss.work<OperationJob>(
      OPERATIONS_QUEUE,
      // NOTIFY wakes workers for new jobs at once; a busy worker looks again within a second of its last job.
      // pg-boss's group limit counts running jobs when it hands them out, which concurrent fetches can
      // overshoot; the subscription slot taken below makes the bound exact.
      {
        localConcurrency: concurrency,
        groupConcurrency,
        batchSize: 1,
        pollingIntervalSeconds: 1,
        notifyPollingIntervalSeconds: 1,
      },
      async ([job]) => {
        if (!job) return
        const release = await slots.acquire(job.groupId ?? 'ungrouped', job.signal)
        try {
          await handler(job, { retryCount: job.retryCount, retryLimit: this.#options.retryLimit })
        } finally {
          await release()
        }
      },
    )
  }

  /** Stops claiming new jobs and waits (up to `graceMs`) for running ones. */
  async stop(graceMs: number): Promise<void> {
    await this.#boss.stop({ graceful: true, timeout: graceMs })
    await Promise.all(this.#slots.map((slots) => slots.close()))
  }
}
