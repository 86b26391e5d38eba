/** Something whose corked writes can be flushed. */
export interface Flushable {
  /** The end of the turn that corked it (or of a later one it was scheduled again for). */
  uncork(): void
  /** The hold ({@link WriteBatcher.hold}) is over: flush whatever waits. */
  release(): void
}

/**
 * Flushes corked socket writes once per event-loop turn, for every session together: all the
 * frames a turn produces for a device (the acknowledgements of the PUBACKs one read from the
 * broker carried, the pong after an ack, …) leave in one syscall. PUBACKs can be handled in
 * several `process.nextTick`s of a turn, so flushing per tick would cost a syscall per
 * acknowledgement; `setImmediate` runs once the turn's I/O and ticks are done.
 * One Immediate per turn for all sessions, and no allocation per write.
 *
 * A session may also hold its writes past the turn ({@link hold}): it is flushed when it is
 * scheduled again, and at the latest `holdMs` later, by one timer for all held sessions. Nothing
 * runs while they wait.
 */
export class WriteBatcher {
  private readonly due = new TurnList()
  private scheduled = false
  private readonly held = new TurnList()
  private timer: NodeJS.Timeout | undefined

  /** @param holdMs the longest a held session waits (see {@link hold}). */
  constructor(readonly holdMs = 0) {}

  /** `target` has corked writes; flush it at the end of this turn. Call once per cork. */
  schedule(target: Flushable): void {
    this.due.push(target)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(flushAll, this)
    }
  }

  /**
   * `target` keeps its writes corked for now: its `release` is called within `holdMs` unless it
   * was flushed before (then the call finds nothing to do). Call once per hold.
   */
  hold(target: Flushable): void {
    this.held.push(target)
    if (this.timer === undefined) {
      this.timer = setTimeout(releaseAll, this.holdMs, this)
      this.timer.unref()
    }
  }

  /** @internal */
  flush(): void {
    this.scheduled = false
    const batch = this.due.take()
    for (let i = 0; i < batch.length; i++) batch[i]!.uncork()
    this.due.done()
  }

  /** @internal */
  release(): void {
    this.timer = undefined
    const batch = this.held.take()
    for (let i = 0; i < batch.length; i++) batch[i]!.release()
    this.held.done()
  }
}

/**
 * Targets collected for a run, in two arrays used in turn: what is pushed while a batch runs goes
 * into the other one, for the next run. No allocation per push or per run.
 */
class TurnList {
  private items: Flushable[] = []
  private spare: Flushable[] = []

  push(target: Flushable): void {
    this.items.push(target)
  }

  /** The batch to run now; new pushes go to the next one. Call {@link done} after running it. */
  take(): readonly Flushable[] {
    const batch = this.items
    this.items = this.spare
    this.spare = batch
    return batch
  }

  /** The batch taken last has run: emptied, for reuse. */
  done(): void {
    this.spare.length = 0
  }
}

function flushAll(batcher: WriteBatcher): void {
  batcher.flush()
}

function releaseAll(batcher: WriteBatcher): void {
  batcher.release()
}
