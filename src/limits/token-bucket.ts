/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. Pure: the caller passes the
 * time, so one clock read serves many checks and tests need no timers. Two numbers of state.
 */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst
    this.last = now
  }

  /** Takes one token if there is one. `now` in ms. */
  take(now: number): boolean {
    const elapsed = now - this.last
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000)
      this.last = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Whether the bucket is full again (its state can be forgotten). */
  idle(now: number): boolean {
    return this.tokens + ((now - this.last) * this.rate) / 1000 >= this.burst
  }
}
