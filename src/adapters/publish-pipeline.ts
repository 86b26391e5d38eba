import type { IClientOptions } from 'mqtt'

type IMessageIdProvider = NonNullable<IClientOptions['messageIdProvider']>

/**
 * The gateway's QoS 0 and 1 publishes to an external broker, written straight onto the broker
 * connection's socket: encoded into a shared slab (no packet object, no per-field stream writes),
 * one socket write per event-loop turn, and a FIFO of what awaits its PUBACK. A QoS 0 publish is
 * answered once its bytes are written (as MQTT.js does).
 *
 * MQTT.js remains the connection: CONNECT, keepalive, subscriptions, incoming messages, reconnects
 * and everything published while this pipeline stands aside (see MqttClientPort). The profile of
 * 100 devices through Mosquitto put a third of the gateway's CPU in MQTT.js's publish path
 * (a packet object, option merging, ~6 stream writes and debug calls per publish) — see the
 * README's Performance section.
 *
 * Pure: it writes to whatever sink it is given and never touches a clock or a socket itself.
 */

/** Where the encoded bytes go: the broker connection's socket. */
export interface PublishSink {
  write(chunk: Buffer): boolean
}

export type PublishDone = (err?: Error) => void

/**
 * A publish handed back when the connection is lost, to be published again: a QoS 1 publish not
 * acknowledged, or a QoS 0 publish not yet written.
 */
export interface Unacknowledged {
  readonly qos: 0 | 1
  readonly topic: string
  readonly payload: string | Buffer
  readonly retain: boolean
  readonly done: PublishDone
}

const SLAB_SIZE = 64 * 1024
/** The largest remaining length MQTT can express (four length bytes; MQTT 3.1.1 2.2.3). */
const MAX_REMAINING = 268_435_455

/**
 * Packet identifiers shared by MQTT.js and the pipeline (given to MQTT.js as its
 * `messageIdProvider`), so that a PUBACK names exactly one of them. Never hands out an identifier
 * still in use; null when all 65,535 are.
 */
export class MessageIds implements IMessageIdProvider {
  private readonly used = new Uint8Array(65536)
  private next = 1
  private last: number | null = null
  private count = 0

  allocate(): number | null {
    if (this.count === 65535) return null
    let id = this.next
    while (this.used[id] === 1) id = id === 65535 ? 1 : id + 1
    this.used[id] = 1
    this.count++
    this.next = id === 65535 ? 1 : id + 1
    this.last = id
    return id
  }

  getLastAllocated(): number | null {
    return this.last
  }

  register(id: number): boolean {
    if (this.used[id] === 1) return false
    this.used[id] = 1
    this.count++
    return true
  }

  deallocate(id: number): void {
    if (this.used[id] !== 1) return
    this.used[id] = 0
    this.count--
  }

  clear(): void {
    this.used.fill(0)
    this.count = 0
  }

  get inUse(): number {
    return this.count
  }
}

export class PublishPipeline {
  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
  /** Bytes of the slab already written to the sink (or dropped). */
  private start = 0
  /** End of the bytes encoded so far. */
  private end = 0
  private flushScheduled = false
  private readonly flushNow = (): void => {
    this.flushScheduled = false
    this.flush()
  }

  // The publishes awaiting their PUBACK, oldest first: a ring of parallel arrays, grown by doubling.
  private ids = new Uint16Array(64)
  private topics: (string | undefined)[] = new Array(64)
  private payloads: (string | Buffer | undefined)[] = new Array(64)
  private retains = new Uint8Array(64)
  private dones: (PublishDone | undefined)[] = new Array(64)
  /** Each publish's place in the order of all publishes (QoS 0 and 1), for `takeUnacknowledged`. */
  private seqs = new Float64Array(64)
  private head = 0
  private count = 0
  private seq = 0

  // The QoS 0 publishes encoded and not yet written, oldest first (reset by every flush).
  private readonly zero = new ZeroQueue()

  /**
   * @param messageIds the packet identifiers shared with MQTT.js
   * @param sink the connection's socket now, or undefined if there is none to write to (the bytes
   *   are then dropped; the publishes stay in flight until `takeUnacknowledged`)
   * @param schedule runs a function once the current event-loop turn's work is done
   */
  constructor(
    private readonly messageIds: MessageIds,
    private readonly sink: () => PublishSink | undefined,
    private readonly schedule: (fn: () => void) => void,
  ) {}

  /** Publishes awaiting their PUBACK. */
  get inflight(): number {
    return this.count
  }

  /**
   * Encodes a PUBLISH and queues it for this turn's write. `done` is called at the PUBACK (QoS 1)
   * or once written (QoS 0). False (and nothing done) when no packet identifier is free or the
   * packet is beyond what MQTT can carry: the caller publishes another way (MQTT.js waits for an
   * identifier, or reports the size).
   */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1, retain: boolean, done: PublishDone): boolean {
    const topicLength = Buffer.byteLength(topic)
    const payloadLength = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    const remaining = 2 + topicLength + (qos === 1 ? 2 : 0) + payloadLength
    if (remaining > MAX_REMAINING || topicLength > 0xffff) return false
    let id = 0
    if (qos === 1) {
      const allocated = this.messageIds.allocate()
      if (allocated === null) return false
      id = allocated
    }
    const size = 1 + varIntSize(remaining) + remaining
    if (this.slab.length - this.end < size) {
      this.flush()
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, size))
      this.start = 0
      this.end = 0
    }
    const b = this.slab
    let o = this.end
    b[o++] = (qos === 1 ? 0x32 : 0x30) | (retain ? 1 : 0) // PUBLISH, QoS, retain
    for (let r = remaining; ; ) {
      const digit = r & 0x7f
      r >>>= 7
      if (r === 0) {
        b[o++] = digit
        break
      }
      b[o++] = digit | 0x80
    }
    b[o++] = topicLength >> 8
    b[o++] = topicLength & 0xff
    o += b.write(topic, o)
    if (qos === 1) {
      b[o++] = id >> 8
      b[o++] = id & 0xff
    }
    if (typeof payload === 'string') o += b.write(payload, o)
    else o += payload.copy(b, o)
    this.end = o
    const seq = this.seq++
    if (qos === 1) this.enqueue(id, topic, payload, retain, done, seq)
    else this.zero.push(topic, payload, retain, done, seq)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      this.schedule(this.flushNow)
    }
    return true
  }

  /**
   * Writes what is encoded and not yet written, then answers the QoS 0 publishes in it. Call
   * before anything else writes to the sink. With no sink (the connection is going) nothing is
   * written or answered: `takeUnacknowledged`, once the loss is seen, drops those bytes and hands
   * their publishes back.
   */
  flush(): void {
    if (this.end === this.start) return
    const sink = this.sink()
    if (sink === undefined) return
    const chunk = this.slab.subarray(this.start, this.end)
    this.start = this.end
    sink.write(chunk)
    this.zero.answerAll()
  }

  /**
   * A PUBACK arrived: the callback of the publish it acknowledges, removed from the queue, or
   * undefined if that identifier is not one of the pipeline's (MQTT.js's own).
   */
  acknowledge(id: number): PublishDone | undefined {
    if (this.count === 0) return undefined
    const mask = this.ids.length - 1
    // A broker sends PUBACKs in the order of the PUBLISHes (MQTT 3.1.1 4.6): the oldest, nearly always.
    let k = 0
    while (k < this.count && this.ids[(this.head + k) & mask] !== id) k++
    if (k === this.count) return undefined
    const at = (this.head + k) & mask
    const done = this.dones[at]!
    // Close the gap (k is 0 unless a broker reordered): later entries keep their order.
    for (let j = k; j > 0; j--) this.move((this.head + j - 1) & mask, (this.head + j) & mask)
    this.clear(this.head)
    this.head = (this.head + 1) & mask
    this.count--
    this.messageIds.deallocate(id)
    return done
  }

  /**
   * The connection is gone: every QoS 1 publish still awaiting its PUBACK and every QoS 0 publish
   * not yet written, in the order they were published, and the pipeline empty (bytes not yet
   * written are dropped with it).
   */
  takeUnacknowledged(): Unacknowledged[] {
    const mask = this.ids.length - 1
    const zero = this.zero.take()
    const out: Unacknowledged[] = []
    let z = 0
    for (let k = 0; k < this.count; k++) {
      const at = (this.head + k) & mask
      while (z < zero.length && zero[z]!.seq < this.seqs[at]!) out.push(zero[z++]!)
      out.push({
        qos: 1,
        topic: this.topics[at]!,
        payload: this.payloads[at]!,
        retain: this.retains[at] === 1,
        done: this.dones[at]!,
      })
      this.messageIds.deallocate(this.ids[at]!)
      this.clear(at)
    }
    while (z < zero.length) out.push(zero[z++]!)
    this.head = 0
    this.count = 0
    this.start = this.end
    return out
  }

  private enqueue(
    id: number,
    topic: string,
    payload: string | Buffer,
    retain: boolean,
    done: PublishDone,
    seq: number,
  ): void {
    if (this.count === this.ids.length) this.grow()
    const at = (this.head + this.count) & (this.ids.length - 1)
    this.ids[at] = id
    this.seqs[at] = seq
    this.topics[at] = topic
    this.payloads[at] = payload
    this.retains[at] = retain ? 1 : 0
    this.dones[at] = done
    this.count++
  }

  private grow(): void {
    const capacity = this.ids.length * 2
    const mask = this.ids.length - 1
    const ids = new Uint16Array(capacity)
    const topics: (string | undefined)[] = new Array(capacity)
    const payloads: (string | Buffer | undefined)[] = new Array(capacity)
    const retains = new Uint8Array(capacity)
    const dones: (PublishDone | undefined)[] = new Array(capacity)
    const seqs = new Float64Array(capacity)
    for (let k = 0; k < this.count; k++) {
      const at = (this.head + k) & mask
      ids[k] = this.ids[at]!
      seqs[k] = this.seqs[at]!
      topics[k] = this.topics[at]
      payloads[k] = this.payloads[at]
      retains[k] = this.retains[at]!
      dones[k] = this.dones[at]
    }
    this.ids = ids
    this.topics = topics
    this.payloads = payloads
    this.retains = retains
    this.dones = dones
    this.seqs = seqs
    this.head = 0
  }

  private move(from: number, to: number): void {
    this.ids[to] = this.ids[from]!
    this.seqs[to] = this.seqs[from]!
    this.topics[to] = this.topics[from]
    this.payloads[to] = this.payloads[from]
    this.retains[to] = this.retains[from]!
    this.dones[to] = this.dones[from]
  }

  /** Drops a slot's references (payloads can be large; callbacks hold sessions). */
  private clear(at: number): void {
    this.topics[at] = undefined
    this.payloads[at] = undefined
    this.dones[at] = undefined
  }
}

/** A publish handed back with its place in the order of all publishes. */
interface Sequenced extends Unacknowledged {
  readonly seq: number
}

/**
 * QoS 0 publishes between their encoding and their write: a list emptied by every flush, in
 * parallel arrays (no object per publish; the callbacks' array is a new one after each flush, so
 * that a callback publishing again cannot disturb the list being answered).
 */
class ZeroQueue {
  private topics: (string | undefined)[] = []
  private payloads: (string | Buffer | undefined)[] = []
  private retains: boolean[] = []
  private dones: (PublishDone | undefined)[] = []
  private seqs: number[] = []
  private count = 0

  push(topic: string, payload: string | Buffer, retain: boolean, done: PublishDone, seq: number): void {
    const k = this.count++
    this.topics[k] = topic
    this.payloads[k] = payload
    this.retains[k] = retain
    this.dones[k] = done
    this.seqs[k] = seq
  }

  /** Their bytes are written: each is answered, oldest first. */
  answerAll(): void {
    const n = this.count
    if (n === 0) return
    // A callback may publish and flush again: its entries start a list of their own.
    this.count = 0
    const dones = this.dones
    this.dones = []
    this.clear(n)
    for (let k = 0; k < n; k++) dones[k]!()
  }

  /** All of them, oldest first, and the list empty. */
  take(): Sequenced[] {
    const out: Sequenced[] = []
    for (let k = 0; k < this.count; k++) {
      out.push({
        qos: 0,
        topic: this.topics[k]!,
        payload: this.payloads[k]!,
        retain: this.retains[k]!,
        done: this.dones[k]!,
        seq: this.seqs[k]!,
      })
    }
    this.clear(this.count)
    this.dones = []
    this.count = 0
    return out
  }

  /** Drops the references of the first n entries (payloads can be large). */
  private clear(n: number): void {
    for (let k = 0; k < n; k++) {
      this.topics[k] = undefined
      this.payloads[k] = undefined
    }
  }
}

function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}
