import { performance } from 'node:perf_hooks'

/**
 * MQTT keepalive of one connection (MQTT 5 3.1.2.10). Every half keepalive: a PINGREQ when either
 * side has been quiet that long (the broker must hear from us within the keepalive, and a broker
 * that stops answering is noticed even while the gateway is the one sending), and a connection
 * whose PINGREQ went unanswered for a whole keepalive is given up.
 */
export class Keepalive {
  private ms = 0
  private timer: NodeJS.Timeout | undefined
  private lastReceived = 0
  private lastWritten = 0
  private pingSentAt = 0

  /**
   * @param ping sends a PINGREQ
   * @param dead the broker did not answer one within the keepalive
   */
  constructor(
    private readonly ping: () => void,
    private readonly dead: (reason: string) => void,
  ) {}

  /** A connection is up; `seconds` 0 turns the keepalive off. */
  start(seconds: number): void {
    this.stop()
    this.ms = seconds * 1000
    this.lastReceived = performance.now()
    this.lastWritten = this.lastReceived
    this.pingSentAt = 0
    this.schedule()
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** Bytes came from the broker. */
  received(): void {
    this.lastReceived = performance.now()
  }

  /** Bytes went to the broker. */
  written(): void {
    this.lastWritten = performance.now()
  }

  private schedule(): void {
    if (this.ms <= 0) return
    this.timer = setTimeout(() => this.check(), this.ms / 2)
    this.timer.unref()
  }

  private check(): void {
    this.timer = undefined
    const now = performance.now()
    const half = this.ms / 2
    if (this.pingSentAt !== 0) {
      if (this.lastReceived >= this.pingSentAt) this.pingSentAt = 0
      else if (now - this.pingSentAt >= this.ms - 1) {
        this.dead(`no answer from the broker for ${this.ms / 1000} s (keepalive)`)
        return
      }
    }
    // 1 ms of slack: a timer may fire a little early.
    if (
      this.pingSentAt === 0 &&
      (now - this.lastWritten >= half - 1 || now - this.lastReceived >= half - 1)
    ) {
      this.pingSentAt = now
      this.ping()
    }
    this.schedule()
  }
}
