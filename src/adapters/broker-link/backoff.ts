/**
 * Delays between reconnection attempts: exponential (the first step, then doubling up to a cap)
 * with "equal jitter" — each delay is drawn between half and all of the step — so that gateways
 * that lost the same broker at the same moment do not all come back at the same moment.
 */
export class Backoff {
  private attempt = 0

  constructor(
    private readonly firstMs: number,
    private readonly capMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt, ms; each call doubles the step, up to the cap. */
  next(): number {
    const step = Math.min(this.capMs, this.firstMs * 2 ** this.attempt)
    if (step < this.capMs) this.attempt++
    return step / 2 + this.random() * (step / 2)
  }

  /** A connection held: the next loss starts again at the first step. */
  reset(): void {
    this.attempt = 0
  }
}
