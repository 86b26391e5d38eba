import type { AckLater } from '../../bridge/port.js'

/**
 * The PUBACKs of the messages the broker sends, in the order the messages came (MQTT 3.1.1 and 5,
 * 4.6), when some must wait for the gateway to make their message durable first (the downlink
 * store). While none waits, each goes at once: nothing is queued on the usual path.
 */
export class InboundAcks {
  private readonly ids: number[] = []
  private readonly ready: boolean[] = []
  private head = 0
  /** Bumped at each reset: an ack made ready for an earlier connection is not sent on this one. */
  private generation = 0

  constructor(private readonly send: (id: number) => void) {}

  /** A QoS 1 message `id` came; `later` when its acknowledgement has to wait. */
  received(id: number, later: AckLater | undefined): void {
    if (later === undefined && this.head === this.ids.length) return this.send(id)
    const k = this.ids.length
    this.ids.push(id)
    this.ready.push(later === undefined)
    if (later === undefined) return
    const generation = this.generation
    later(() => {
      if (generation !== this.generation) return
      this.ready[k] = true
      this.flush()
    })
  }

  /** The connection is gone: what is held is not sent (the broker sends those messages again). */
  reset(): void {
    this.generation++
    this.clear()
  }

  private flush(): void {
    while (this.head < this.ids.length && this.ready[this.head]) this.send(this.ids[this.head++]!)
    if (this.head === this.ids.length) this.clear()
  }

  private clear(): void {
    this.ids.length = 0
    this.ready.length = 0
    this.head = 0
  }
}
