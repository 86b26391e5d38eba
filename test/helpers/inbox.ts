/**
 * Items that arrive asynchronously (frames, MQTT messages, device events), and `take` to await
 * the first one matching a predicate. Event-driven: tests wait for what they expect instead of
 * sleeping and hoping. A timeout fails with what did arrive, to make failures readable.
 */
export class Inbox<T> {
  readonly history: T[] = []
  private items: T[] = []
  private waiters: { match: (t: T) => boolean; resolve: (t: T) => void }[] = []

  constructor(private readonly label: string) {}

  push(item: T): void {
    this.history.push(item)
    const i = this.waiters.findIndex((w) => w.match(item))
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1)
      w!.resolve(item)
      return
    }
    this.items.push(item)
  }

  /** Removes and returns the first unconsumed item matching `match`, waiting up to `timeoutMs`. */
  take(match: (t: T) => boolean = () => true, timeoutMs = 5000, what = 'a matching item'): Promise<T> {
    const i = this.items.findIndex(match)
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!)
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (t: T) => {
          clearTimeout(timer)
          resolve(t)
        },
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        const seen = this.history
          .slice(-8)
          .map((x) => JSON.stringify(x))
          .join('\n  ')
        reject(
          new Error(`${this.label}: no ${what} within ${timeoutMs} ms; last seen:\n  ${seen || '(nothing)'}`),
        )
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** The next unconsumed item, whatever it is. */
  next(timeoutMs = 5000): Promise<T> {
    return this.take(() => true, timeoutMs, 'item')
  }

  /** Unconsumed items, without consuming them. */
  pending(): readonly T[] {
    return this.items
  }
}

/** Polls `cond` until true (for counters the gateway bumps asynchronously). */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
