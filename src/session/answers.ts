/**
 * The answers a device is owed, in the order of its requests (PROTOCOL decision 22): an uplink's
 * ack waits for the broker, and a later request answered at once (a PING, a refused frame, a JSON
 * ping's pong) waits behind it. A ring of parallel arrays, grown by doubling and never shrunk:
 * nothing is allocated per answer once it has reached a session's usual depth.
 */

/** A slot whose answer the broker has not given yet. */
const PENDING = -1

/** Writes one answer: `pong` is the body of a JSON ping's pong, sent after the ack. */
export type AnswerSink = (msgId: number, status: number, pong: string | undefined) => void

export class AnswerQueue {
  private msgIds: number[] = []
  private statuses: number[] = []
  private pongs: Array<string | undefined> = []
  /** Ring position of the oldest answer. */
  private head = 0
  private count = 0
  /** Sequence number of the oldest answer: an uplink's ticket is its own. */
  private headSeq = 0

  /** Answers owed, ready or not. */
  get length(): number {
    return this.count
  }

  /**
   * An answer known now: written at once through `sink` when nothing is owed before it,
   * else queued behind what is.
   */
  answer(msgId: number, status: number, pong: string | undefined, sink: AnswerSink): void {
    if (this.count === 0) sink(msgId, status, pong)
    else this.push(msgId, status, pong)
  }

  /** An answer still to come; the returned ticket settles it ({@link settle}). */
  reserve(msgId: number): number {
    return this.push(msgId, PENDING, undefined)
  }

  /**
   * The answer of `ticket` is known: it and every ready answer after it are written, in order,
   * once all before them are. A ticket from before the last {@link clear} is ignored.
   */
  settle(ticket: number, status: number, sink: AnswerSink): void {
    const offset = ticket - this.headSeq
    if (offset < 0 || offset >= this.count) return
    this.statuses[(this.head + offset) & (this.msgIds.length - 1)] = status
    this.drain(sink)
  }

  /**
   * Writes the ready answers at the front of the queue and forgets everything after the first
   * one still pending: the connection ends, and those are never answered.
   */
  flushReady(sink: AnswerSink): void {
    this.drain(sink)
    this.clear()
  }

  /** Forgets every answer owed (the connection ended). */
  clear(): void {
    const mask = this.msgIds.length - 1
    for (let i = 0; i < this.count; i++) this.pongs[(this.head + i) & mask] = undefined
    this.headSeq += this.count
    this.head = 0
    this.count = 0
  }

  private drain(sink: AnswerSink): void {
    const mask = this.msgIds.length - 1
    while (this.count > 0) {
      const at = this.head
      const status = this.statuses[at]!
      if (status === PENDING) return
      const pong = this.pongs[at]
      this.pongs[at] = undefined
      this.head = (at + 1) & mask
      this.count--
      this.headSeq++
      sink(this.msgIds[at]!, status, pong)
    }
  }

  private push(msgId: number, status: number, pong: string | undefined): number {
    if (this.count === this.msgIds.length) this.grow()
    const at = (this.head + this.count) & (this.msgIds.length - 1)
    this.msgIds[at] = msgId
    this.statuses[at] = status
    this.pongs[at] = pong
    this.count++
    return this.headSeq + this.count - 1
  }

  /** Doubles the ring (a power of two), the oldest answer moving to position 0. */
  private grow(): void {
    const size = this.msgIds.length
    const next = size === 0 ? 8 : size * 2
    const msgIds = new Array<number>(next)
    const statuses = new Array<number>(next)
    const pongs = new Array<string | undefined>(next)
    for (let i = 0; i < this.count; i++) {
      const from = (this.head + i) & (size - 1)
      msgIds[i] = this.msgIds[from]!
      statuses[i] = this.statuses[from]!
      pongs[i] = this.pongs[from]
    }
    this.msgIds = msgIds
    this.statuses = statuses
    this.pongs = pongs
    this.head = 0
  }
}
