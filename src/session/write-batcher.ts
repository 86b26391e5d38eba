/** Something whose corked writes can be flushed. */
export interface Flushable {
  uncork(): void
}

/**
 * Flushes corked socket writes once per event-loop turn, for every session together: all the
 * frames a turn produces for a device (the acknowledgements of the PUBACKs one read from the
 * broker carried, the pong after an ack, …) leave in one syscall. MQTT.js handles each incoming
 * packet in its own `process.nextTick`, so flushing per tick would cost a syscall per
 * acknowledgement; `setImmediate` runs once the turn's I/O and ticks are done.
 * One Immediate per turn for all sessions, and no allocation per write. A target may schedule
 * itself again from `uncork` to wait one more turn (a session holding acknowledgements).
 */
export class WriteBatcher {
  private queue: Flushable[] = []
  private spare: Flushable[] = []
  private scheduled = false

  /** `target` has corked writes; flush it at the end of this turn. Call once per cork. */
  schedule(target: Flushable): void {
    this.queue.push(target)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(flushAll, this)
    }
  }

  /** @internal */
  flush(): void {
    this.scheduled = false
    const batch = this.queue
    this.queue = this.spare
    for (let i = 0; i < batch.length; i++) batch[i]!.uncork()
    batch.length = 0
    this.spare = batch
  }
}

function flushAll(batcher: WriteBatcher): void {
  batcher.flush()
}
