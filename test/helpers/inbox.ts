/**
 * Items that arrive asynchronously (frames, MQTT messages, device output lines), and `take` to
 * await the first one matching a predicate. Event-driven: tests wait for what they expect instead
 * of sleeping and hoping. Each item satisfies one `take` at most. A wait fails with what did
 * arrive — on timeout, or at once when the source is gone ({@link close}) — to make failures
 * readable.
 */
export class Inbox<T> {
  readonly history: T[] = []
  private items: T[] = []
  private waiters: { match: (t: T) => boolean; resolve: (t: T) => void; fail: (err: Error) => void }[] = []
  private closedBecause: string | undefined

  /** `context` adds to failure messages (e.g. a process's stderr). */
  constructor(
    private readonly label: string,
    private readonly context: () => string = () => '',
  ) {}

  push(item: T): void {
    this.history.push(item)
    const w = this.waiters.find((x) => x.match(item))
    if (w) {
      w.resolve(item)
      return
    }
    this.items.push(item)
  }

  /** Removes and returns the first unconsumed item matching `match`, waiting up to `timeoutMs`. */
  take(match: (t: T) => boolean = () => true, timeoutMs = 5000, what = 'a matching item'): Promise<T> {
    const i = this.items.findIndex(match)
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!)
    if (this.closedBecause !== undefined)
      return Promise.reject(this.error(`${this.closedBecause} before ${what}`))
    return new Promise((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer)
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
      }
      const waiter = {
        match,
        resolve: (t: T) => {
          settle()
          resolve(t)
        },
        fail: (err: Error) => {
          settle()
          reject(err)
        },
      }
      const timer = setTimeout(() => waiter.fail(this.error(`no ${what} within ${timeoutMs} ms`)), timeoutMs)
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

  /** The source is gone: waits pending now, and later ones nothing can satisfy, fail at once. */
  close(reason: string): void {
    this.closedBecause = reason
    for (const w of [...this.waiters]) w.fail(this.error(`${reason} while waiting`))
  }

  private error(message: string): Error {
    const seen = this.history
      .slice(-10)
      .map((x) => (typeof x === 'string' ? x : JSON.stringify(x)))
      .join('\n  ')
    return new Error(`${this.label}: ${message}; last seen:\n  ${seen || '(nothing)'}${this.context()}`)
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
