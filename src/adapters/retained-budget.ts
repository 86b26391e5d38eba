/**
 * A bound on the embedded broker's retained messages, in count and bytes: the retained store is
 * memory, and without a bound any client could fill it (300 × 1 MB retained stayed +300 MB). Past
 * either bound the oldest retained message is cleared, oldest first — never a presence topic's
 * (those are the gateway's, one per device, bounded by the registry, and not counted).
 * Pure bookkeeping: the broker tells it what was retained and clears what it is told to.
 */
export class RetainedBudget {
  /** Retained topics and their sizes, oldest first (a Map keeps insertion order; updates move to the end). */
  private readonly sizes = new Map<string, number>()
  private bytes = 0

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    /** Topics never counted nor cleared (presence). */
    private readonly exempt: (topic: string) => boolean,
    /** Clears one retained message (an empty retained publish). */
    private readonly clear: (topic: string) => void,
  ) {}

  /** A retained publish was stored (an empty payload removes the topic's message). */
  retained(topic: string, size: number): void {
    if (this.exempt(topic)) return
    const before = this.sizes.get(topic)
    if (before !== undefined) {
      this.sizes.delete(topic)
      this.bytes -= before
    }
    if (size === 0) return
    this.sizes.set(topic, size)
    this.bytes += size
    while (this.sizes.size > this.maxMessages || this.bytes > this.maxBytes) {
      const [oldest, bytes] = this.sizes.entries().next().value as [string, number]
      this.sizes.delete(oldest)
      this.bytes -= bytes
      this.clear(oldest)
    }
  }
}
