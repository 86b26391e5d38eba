/**
 * Takeover flapping: one device id logging in again and again (two devices with one token, a
 * boot loop) makes each login close the previous connection, on every instance. Past `limit`
 * logins of an id within `windowMs`, each further one waits, progressively longer (doubling from
 * 250 ms up to `maxDelayMs`), and they are spaced out, not released together. Pure: the caller
 * passes the time.
 */
export class FlapGuard {
  private readonly ids = new Map<string, { count: number; since: number; nextAt: number }>()

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly maxDelayMs: number,
    private readonly maxTracked = 100_000,
  ) {}

  /** Ms this login of `id` must wait before it proceeds (0: at once). */
  delay(id: string, now: number): number {
    if (this.limit <= 0) return 0
    let e = this.ids.get(id)
    if (e === undefined || now - e.since > this.windowMs) {
      if (e === undefined && this.ids.size >= this.maxTracked) this.sweep(now)
      e = { count: 0, since: now, nextAt: 0 }
      this.ids.set(id, e)
    }
    e.count++
    if (e.count <= this.limit) return 0
    const step = Math.min(this.maxDelayMs, 250 * 2 ** Math.min(20, e.count - this.limit - 1))
    const at = Math.max(now, e.nextAt) + step
    e.nextAt = at
    return at - now
  }

  /** Forgets ids whose window is over and that nothing waits for. */
  sweep(now: number): void {
    for (const [id, e] of this.ids) if (now - e.since > this.windowMs && e.nextAt <= now) this.ids.delete(id)
  }
}
