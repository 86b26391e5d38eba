import type { Duplex } from 'node:stream'
import type { Flushable, WriteBatcher } from './write-batcher.js'

/** What the write path needs to know of its session. */
export interface OutputOwner {
  /** Uplinks of the device still awaiting the broker (their answers are still to come). */
  readonly inflight: number
  /** Whether answers may be held: the session is online. */
  readonly online: boolean
  readonly closed: boolean
  /** The device left written data unread for `drainTimeoutMs`. */
  slowConsumer(): void
}

/**
 * The frames a session sends its device, corked and written once per event-loop turn (one syscall
 * for all the frames a turn produces for it), and answers held past the turn while more of the
 * device's uplinks await the broker (PROTOCOL decision 22). One small state machine:
 *
 * - `idle`: nothing corked;
 * - `turn`: answers corked, leaving at the end of this turn (the batcher has the session);
 * - `turn-urgent`: the same with a frame the gateway originates among them, which must not wait;
 * - `held`: answers corked past the turn, until the device's last uplink in flight is answered, a
 *   frame of the gateway's own is written, or the batcher's `holdMs` is over.
 */
export class Output implements Flushable {
  private state: 'idle' | 'turn' | 'turn-urgent' | 'held' = 'idle'
  /** In the batcher's list of held outputs (until its `release` call), whatever the state is now. */
  private listed = false
  private drainTimer: NodeJS.Timeout | undefined
  /** Frames written, all sessions (the gateway's counter). */
  private readonly counted: { framesOut: number }

  constructor(
    private readonly socket: Duplex,
    private readonly batcher: WriteBatcher,
    private readonly drainTimeoutMs: number,
    private readonly owner: OutputOwner,
    counters: { framesOut: number },
  ) {
    this.counted = counters
  }

  /** Corks `frame` for this turn's write; `urgent` for a frame the gateway originates (not an answer). */
  write(frame: Buffer, urgent: boolean): boolean {
    if (this.socket.writableEnded || this.socket.destroyed) return false
    switch (this.state) {
      case 'idle':
        this.socket.cork()
        this.state = urgent ? 'turn-urgent' : 'turn'
        this.batcher.schedule(this)
        break
      case 'turn':
        if (urgent) this.state = 'turn-urgent'
        break
      case 'turn-urgent':
        break
      case 'held':
        // A frame of the gateway's own ends the hold, and so does the last answer due.
        if (urgent || this.owner.inflight === 0) {
          this.state = urgent ? 'turn-urgent' : 'turn'
          this.batcher.schedule(this)
        }
        break
    }
    this.counted.framesOut++
    this.socket.write(frame)
    return true
  }

  /** A body written right after the frame header just written, uncopied (it is corked with it). */
  append(body: Buffer): void {
    this.socket.write(body)
  }

  /**
   * @internal The end of the turn: the corked frames leave. Answers alone may wait: while more of
   * the device's uplinks await the broker, their answers will come in later turns (the broker
   * confirms a few publishes per read), and all leave together once none is left in flight, with
   * a frame of the gateway's own, or after the batcher's `holdMs` at the latest: one syscall for
   * the gateway, one wake-up and one write back for the device. A device that sends one message
   * at a time has nothing else in flight and never waits.
   */
  uncork(): void {
    if (this.state !== 'turn' && this.state !== 'turn-urgent') return // released meanwhile
    if (this.state === 'turn' && this.owner.inflight > 0 && this.batcher.holdMs > 0 && this.owner.online) {
      this.state = 'held'
      if (!this.listed) {
        this.listed = true
        this.batcher.hold(this)
      }
      return
    }
    this.flush()
  }

  /** @internal The longest hold is over. */
  release(): void {
    this.listed = false
    if (this.state === 'held') this.flush()
  }

  /** The connection is closing: no drain deadline any more (`end()` flushes what is corked). */
  close(): void {
    clearTimeout(this.drainTimer)
  }

  private flush(): void {
    this.state = 'idle'
    this.socket.uncork()
    // Data the device has not read yet: it has `drainTimeout` to catch up, or it is closed
    // (others are unaffected; its queue is bounded by maxWriteQueue meanwhile).
    if (this.drainTimer === undefined && this.socket.writableLength > 0 && !this.owner.closed) {
      this.drainTimer = setTimeout(onDrainTimeout, this.drainTimeoutMs, this.owner)
      this.drainTimer.unref()
      this.socket.once('drain', () => {
        clearTimeout(this.drainTimer)
        this.drainTimer = undefined
      })
    }
  }
}

function onDrainTimeout(owner: OutputOwner): void {
  owner.slowConsumer()
}
