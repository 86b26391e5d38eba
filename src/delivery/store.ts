/**
 * The downlink store (store-and-forward, at-least-once): messages kept for devices, in order of
 * arrival, bounded per device and in total, with a time to live. The index lives in memory; a
 * {@link Persistence} (SQLite, adapters/sqlite-store.ts) mirrors every change so that the store
 * outlives the process. Pure bookkeeping: no I/O of its own, no timers.
 */

/** A message kept for a device: the body of the JSON_MESSAGE frame it will be sent as. */
export interface Kept {
  /** Store-wide and increasing: the order of arrival. */
  readonly seq: number
  readonly deviceId: string
  /** As it came (the text the gateway made, or the broker's bytes): sent and written as is. */
  readonly body: Buffer | string
  /** The body's length in bytes. */
  readonly bytes: number
  /** When it was kept (ms since the epoch), for the time to live. */
  readonly at: number
  /** Set once it has left the store (acknowledged, evicted, expired, handed over). */
  gone: boolean
  /** The persistence's own note on where it wrote it (a row). */
  written?: unknown
}

/** A device kept for, and the `%u` of its topics (devices of the auth hook are not in the registry). */
export interface HeldDevice {
  readonly deviceId: string
  readonly username: string
}

/** Where the store persists. Every call but `load` is a write of the current turn. */
export interface Persistence {
  /** Whether writes reach a disk (else the store is memory only, and nothing need wait for it). */
  readonly durable: boolean
  /** What an earlier run kept, in `seq` order, and the devices it held. */
  load(): { kept: Kept[]; devices: HeldDevice[] }
  add(kept: Kept): void
  /** `kept` has left the store (its `gone` is set already). */
  remove(kept: Kept): void
  /**
   * A device served here that this instance would not hold by itself (the auth hook's, or, with
   * workers, one outside its share): its messages are kept from now on, across restarts.
   */
  remember(device: HeldDevice): void
  /** A remembered device now served elsewhere: no longer held at the next start. */
  forget(deviceId: string): void
  /** Calls `done` once everything written so far is durable (at once when nothing is pending). */
  whenWritten(done: () => void): void
  /** `live`: what is still in the store (so that what left it does not come back). */
  close(live: Iterable<Kept>): void
}

export interface StoreLimits {
  /** Per device: messages, bytes. */
  readonly messages: number
  readonly bytes: number
  /** All devices: bytes. */
  readonly totalBytes: number
  readonly ttlMs: number
}

/** Why a message left the store without being acknowledged. */
export type Eviction = 'queue_full' | 'store_full' | 'expired'

const NONE: readonly Kept[] = []

/** One device's messages, oldest first, and their bytes. */
interface Queue {
  readonly items: Kept[]
  bytes: number
}

export class DownlinkStore {
  private readonly byDevice = new Map<string, Queue>()
  /** Every kept message in `seq` order (gone ones are skipped, and compacted away now and then). */
  private all: Kept[] = []
  private head = 0
  private count = 0
  private bytes = 0
  private nextSeq = 1
  /** The devices remembered ({@link Persistence.remember}) and their usernames: each written once. */
  private readonly remembered = new Map<string, string>()

  constructor(
    private readonly persistence: Persistence,
    private readonly limits: StoreLimits,
    private readonly onEvict: (kept: Kept, why: Eviction) => void,
  ) {}

  /** Loads what an earlier run kept; returns the devices it held. */
  load(): HeldDevice[] {
    const { kept, devices } = this.persistence.load()
    for (const k of kept) {
      this.index(k)
      this.nextSeq = Math.max(this.nextSeq, k.seq + 1)
    }
    for (const d of devices) this.remembered.set(d.deviceId, d.username)
    return devices
  }

  get durable(): boolean {
    return this.persistence.durable
  }

  /** Messages kept, all devices. */
  get size(): number {
    return this.count
  }

  get totalBytes(): number {
    return this.bytes
  }

  /** Keeps `body` for the device, last in its queue; evicts the oldest past a bound. */
  keep(deviceId: string, body: Buffer | string, now: number): Kept {
    const bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    const kept: Kept = { seq: this.nextSeq++, deviceId, body, bytes, at: now, gone: false }
    this.index(kept)
    this.persistence.add(kept)
    const queue = this.byDevice.get(deviceId)!
    while (
      queue.items.length > this.limits.messages ||
      (queue.bytes > this.limits.bytes && queue.items.length > 1)
    ) {
      this.drop(queue.items[0]!, 'queue_full')
    }
    while (this.bytes > this.limits.totalBytes && this.count > 1) this.drop(this.oldest()!, 'store_full')
    return kept
  }

  /** What is kept for the device, oldest first. */
  pending(deviceId: string): readonly Kept[] {
    return this.byDevice.get(deviceId)?.items ?? NONE
  }

  /** The message has been acknowledged (or is otherwise done with): it leaves the store. */
  remove(kept: Kept): void {
    if (kept.gone) return
    kept.gone = true
    const queue = this.byDevice.get(kept.deviceId)
    if (queue !== undefined) {
      // Acknowledgements come in order: almost always the first.
      const at = queue.items[0] === kept ? 0 : queue.items.indexOf(kept)
      if (at >= 0) {
        queue.items.splice(at, 1)
        queue.bytes -= kept.bytes
      }
      if (queue.items.length === 0) this.byDevice.delete(kept.deviceId)
    }
    this.count--
    this.bytes -= kept.bytes
    this.persistence.remove(kept)
    this.compact()
  }

  /** Takes everything kept for the device out of the store (a handover to another instance). */
  take(deviceId: string): Kept[] {
    const queue = [...this.pending(deviceId)]
    for (const k of queue) this.remove(k)
    return queue
  }

  /** Drops what waited longer than the time to live; returns how many. */
  expire(now: number): number {
    let n = 0
    for (let k = this.oldest(); k !== undefined && now - k.at > this.limits.ttlMs; k = this.oldest()) {
      this.drop(k, 'expired')
      n++
    }
    return n
  }

  remember(device: HeldDevice): void {
    if (this.remembered.get(device.deviceId) === device.username) return
    this.remembered.set(device.deviceId, device.username)
    this.persistence.remember(device)
  }

  forget(deviceId: string): void {
    if (this.remembered.delete(deviceId)) this.persistence.forget(deviceId)
  }

  /** Calls `done` once what was kept so far is durable. */
  whenWritten(done: () => void): void {
    this.persistence.whenWritten(done)
  }

  close(): void {
    this.persistence.close(this.live())
  }

  private *live(): Iterable<Kept> {
    for (const queue of this.byDevice.values()) yield* queue.items
  }

  private index(kept: Kept): void {
    let queue = this.byDevice.get(kept.deviceId)
    if (queue === undefined) {
      queue = { items: [], bytes: 0 }
      this.byDevice.set(kept.deviceId, queue)
    }
    queue.items.push(kept)
    queue.bytes += kept.bytes
    this.all.push(kept)
    this.count++
    this.bytes += kept.bytes
  }

  private drop(kept: Kept, why: Eviction): void {
    this.remove(kept)
    this.onEvict(kept, why)
  }

  private oldest(): Kept | undefined {
    while (this.head < this.all.length && this.all[this.head]!.gone) this.head++
    return this.all[this.head]
  }

  /**
   * Drops the gone entries of `all` once they outnumber the live ones (and 1024): messages
   * acknowledged behind an old one still kept (a device away, for a day) would pile up otherwise.
   */
  private compact(): void {
    const gone = this.all.length - this.count
    if (gone < 1024 || gone < this.count) return
    this.all = this.all.filter((k) => !k.gone)
    this.head = 0
  }
}

/** A store that forgets at exit: `dataDir: 'off'`. */
export class MemoryPersistence implements Persistence {
  readonly durable = false
  load(): { kept: Kept[]; devices: HeldDevice[] } {
    return { kept: [], devices: [] }
  }
  add(): void {}
  remove(): void {}
  remember(): void {}
  forget(): void {}
  whenWritten(done: () => void): void {
    done()
  }
  close(): void {}
}
