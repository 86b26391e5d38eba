/**
 * Per-device sequence bookkeeping at a receiver: how many distinct messages arrived, duplicates,
 * and arrivals out of order. Sequences start at 1 per device and per run. In-order arrival (the
 * usual case: one publisher connection per device, one subscriber) costs two array accesses; only
 * an out-of-order arrival allocates (a set of the seqs seen beyond the next expected one).
 */
export class SeqTracker {
  /** Next expected seq per device (all below it have arrived). */
  private readonly next: Float64Array
  private readonly ahead = new Map<number, Set<number>>()
  readonly unique: Float64Array
  duplicates = 0
  outOfOrder = 0

  constructor(devices: number) {
    this.next = new Float64Array(devices).fill(1)
    this.unique = new Float64Array(devices)
  }

  get devices(): number {
    return this.next.length
  }

  /** Records an arrival; returns false for a duplicate or a device index out of range. */
  record(device: number, seq: number): boolean {
    if (device < 0 || device >= this.next.length) return false
    const next = this.next[device]!
    if (seq === next) {
      let n = next + 1
      const set = this.ahead.get(device)
      if (set !== undefined) {
        while (set.delete(n)) n++
        if (set.size === 0) this.ahead.delete(device)
      }
      this.next[device] = n
      this.unique[device]!++
      return true
    }
    if (seq < next) {
      this.duplicates++
      return false
    }
    let set = this.ahead.get(device)
    if (set === undefined) {
      set = new Set()
      this.ahead.set(device, set)
    }
    if (set.has(seq)) {
      this.duplicates++
      return false
    }
    set.add(seq)
    this.outOfOrder++
    this.unique[device]!++
    return true
  }

  get totalUnique(): number {
    let n = 0
    for (const u of this.unique) n += u
    return n
  }
}
