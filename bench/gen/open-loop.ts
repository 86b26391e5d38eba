import { nowUs } from '../lib/clock.js'

/** What the open loop needs of a device or client: a count of messages to send with its next write. */
export interface Sender {
  toSend: number
  dirty: boolean
}

/**
 * A fixed offered rate, independent of how fast the system under test answers (latency is measured
 * under a given load, not under saturation). Every millisecond it works out how many messages are
 * due since the start, spreads them round-robin over the senders, and flushes each touched sender
 * once. A late tick sends what is overdue at once, so a stall in the system is not hidden by the
 * generator slowing down with it (no coordinated omission).
 */
export class OpenLoop<S extends Sender> {
  private readonly senders: readonly S[]
  private readonly flush: (s: S) => void
  private readonly rate: number
  private readonly startUs = nowUs()
  private scheduled = 0
  private cursor = 0
  private timer: NodeJS.Timeout | undefined
  private readonly dirty: S[] = []

  constructor(senders: readonly S[], rate: number, flush: (s: S) => void) {
    this.senders = senders
    this.rate = rate
    this.flush = flush
    this.timer = setTimeout(() => this.tick(), 1)
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    const due = Math.floor(((nowUs() - this.startUs) * this.rate) / 1e6) - this.scheduled
    const n = this.senders.length
    for (let i = 0; i < due; i++) {
      const s = this.senders[this.cursor]!
      this.cursor = this.cursor + 1 === n ? 0 : this.cursor + 1
      s.toSend++
      if (!s.dirty) {
        s.dirty = true
        this.dirty.push(s)
      }
    }
    if (due > 0) this.scheduled += due
    for (const s of this.dirty) {
      s.dirty = false
      this.flush(s)
    }
    this.dirty.length = 0
    this.timer = setTimeout(() => this.tick(), 1)
  }
}
