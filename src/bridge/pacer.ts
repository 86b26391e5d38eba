import { performance } from 'node:perf_hooks'

/**
 * Runs a job at most once per window, when asked: on the next turn if the last run is older than
 * the window (a lone request waits for nothing), else when the window ends (requests meanwhile
 * share that run). Under a stream of requests the job runs once per window with all of them.
 */
export class Pacer {
  private lastRun = Number.NEGATIVE_INFINITY
  private scheduled: NodeJS.Timeout | NodeJS.Immediate | undefined

  constructor(
    private readonly windowMs: number,
    private readonly job: () => void,
  ) {}

  request(): void {
    if (this.scheduled !== undefined) return
    const wait = this.lastRun + this.windowMs - performance.now()
    if (wait <= 0) {
      this.scheduled = setImmediate(this.run)
    } else {
      this.scheduled = setTimeout(this.run, wait)
      this.scheduled.unref()
    }
  }

  private readonly run = (): void => {
    this.scheduled = undefined
    this.lastRun = performance.now()
    this.job()
  }
}
