/**
 * Longer than 300 lines: the in-flight publishes are a ring of parallel arrays (no object per
 * publish: the uplink hot path), whose growth, moves and clears are spelled out per array.
 */
import { publishRefused, ReasonCode } from './reason-codes.js'
import { type PacketWriter, type ProtocolLevel, publishRemainingLength, varIntSize } from './writer.js'

/**
 * Every publish the gateway hands the link, from the call until the broker has it, in the order
 * they were made — across reconnections too:
 *
 * - **waiting**: not written on the current connection (none, the broker's Receive Maximum is
 *   reached, or something older is still waiting: order comes first);
 * - **in flight**: QoS 1 and 2 publishes written and not yet acknowledged (PUBACK, or PUBREC then
 *   PUBCOMP);
 * - QoS 0 publishes encoded in this turn's write, answered once it is handed to the socket.
 *
 * When the connection is lost, what is in flight and what was not yet written go back to the head
 * of the waiting line in their original order (QoS 1 and 2 marked DUP), ahead of anything newer:
 * on the next connection they leave first. A publish is answered exactly once: at its
 * acknowledgement (with a PublishRefusedError for an MQTT 5 failure reason), when written
 * (QoS 0), or with the error of {@link failAll}.
 *
 * Pure: encodes through the {@link PacketWriter}, never touches a socket or a clock.
 */

export type PublishDone = (err?: Error) => void

/** What the current connection allows (from its CONNACK). */
export interface OutboxLimits {
  readonly level: ProtocolLevel
  /** MQTT 5 Receive Maximum: QoS 1 and 2 publishes unacknowledged at once (3.1.1: 65535). */
  readonly receiveMaximum: number
  /** MQTT 5 Maximum Packet Size of the broker, bytes. */
  readonly maximumPacketSize: number
  readonly maximumQos: 0 | 1 | 2
  readonly retainAvailable: boolean
  /** The broker kept the session: a QoS 2 publish already released is completed with PUBREL alone. */
  readonly sessionPresent: boolean
}

/** A publish not written on the current connection. */
interface Waiting {
  readonly topic: string
  readonly payload: string | Buffer
  readonly qos: 0 | 1 | 2
  readonly retain: boolean
  readonly done: PublishDone
  readonly seq: number
  /** Its packet identifier from an earlier connection, or 0. */
  id: number
  /** Written before: sent again with DUP. */
  dup: boolean
  /** QoS 2: the broker had sent PUBREC (and we PUBREL) on an earlier connection. */
  released: boolean
}

/** Packet identifiers in use (publishes, subscriptions): never one twice; null when all 65,535 are. */
export class PacketIds {
  private readonly used = new Uint8Array(65536)
  private next = 1
  private count = 0

  allocate(): number | null {
    if (this.count === 65535) return null
    let id = this.next
    while (this.used[id] === 1) id = id === 65535 ? 1 : id + 1
    this.used[id] = 1
    this.count++
    this.next = id === 65535 ? 1 : id + 1
    return id
  }

  release(id: number): void {
    if (this.used[id] !== 1) return
    this.used[id] = 0
    this.count--
  }

  get inUse(): number {
    return this.count
  }
}

/** In-flight entry states. */
const WRITTEN = 0
/** QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP. */
const RELEASED = 1

export class Outbox {
  // In flight, oldest first: a ring of parallel arrays (no object per publish), grown by doubling.
  private ids = new Uint16Array(64)
  private seqs = new Float64Array(64)
  /** qos | retain << 2 | state << 3 */
  private flags = new Uint8Array(64)
  private topics: (string | undefined)[] = new Array(64)
  private payloads: (string | Buffer | undefined)[] = new Array(64)
  private dones: (PublishDone | undefined)[] = new Array(64)
  private head = 0
  private count = 0

  private waiting: Waiting[] = []
  private waitingHead = 0
  private readonly zero = new ZeroQueue()
  private seq = 0
  private limits: OutboxLimits | undefined
  /** Called once nothing is left to answer. */
  private emptyWaiters: (() => void)[] = []

  /**
   * @param writer where packets are encoded (the outbox calls its `publish`; the writer's
   *   `onFlushed` must call {@link flushed})
   * @param ids the link's packet identifiers, shared with its SUBSCRIBE and UNSUBSCRIBE
   * @param pubrel encodes a PUBREL for an identifier (mqtt-packet), for the writer's `packet`
   */
  constructor(
    private readonly writer: PacketWriter,
    private readonly ids_: PacketIds,
    private readonly pubrel: (id: number) => Buffer,
  ) {}

  /** QoS 1 and 2 publishes written and not yet acknowledged. */
  get inflight(): number {
    return this.count
  }

  /** Every publish not yet answered. */
  get size(): number {
    return this.count + this.zero.length + this.waiting.length - this.waitingHead
  }

  /**
   * Queues a publish: written at once (this turn's write) when the connection is up, nothing older
   * waits and the broker's Receive Maximum allows; else it waits its turn.
   */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1 | 2, retain: boolean, done: PublishDone): void {
    const seq = this.seq++
    if (this.limits !== undefined && this.waitingHead === this.waiting.length) {
      const sent = this.send(topic, payload, qos, retain, done, seq, 0, false)
      if (sent) return
    }
    this.waiting.push({ topic, payload, qos, retain, done, seq, id: 0, dup: false, released: false })
  }

  /** A connection is up (its CONNACK accepted us): what waits is written, oldest first. */
  connected(limits: OutboxLimits): void {
    this.limits = limits
    this.drain()
  }

  /**
   * The connection is lost: everything not yet answered waits again, in its original order, and
   * publishes written before will carry DUP. Bytes the writer had not yet handed to the socket are
   * its to drop ({@link PacketWriter.detach}).
   */
  disconnected(): void {
    this.limits = undefined
    const mask = this.ids.length - 1
    const zero = this.zero.take()
    const back: Waiting[] = []
    let z = 0
    for (let k = 0; k < this.count; k++) {
      const at = (this.head + k) & mask
      const seq = this.seqs[at]!
      while (z < zero.length && zero[z]!.seq < seq) back.push(zero[z++]!)
      const flags = this.flags[at]!
      back.push({
        topic: this.topics[at]!,
        payload: this.payloads[at]!,
        qos: (flags & 3) as 0 | 1 | 2,
        retain: (flags & 4) !== 0,
        done: this.dones[at]!,
        seq,
        id: this.ids[at]!,
        dup: true,
        released: flags >> 3 === RELEASED,
      })
      this.clear(at)
    }
    while (z < zero.length) back.push(zero[z++]!)
    this.head = 0
    this.count = 0
    for (let k = this.waitingHead; k < this.waiting.length; k++) back.push(this.waiting[k]!)
    this.waiting = back
    this.waitingHead = 0
  }

  /** The writer handed its bytes to the socket: the QoS 0 publishes in them are done. */
  flushed(): void {
    if (this.zero.length === 0) return
    this.zero.answerAll()
    this.checkEmpty()
  }

  /** Runs `fn` once every publish has been answered (at once if none is waiting). */
  onceEmpty(fn: () => void): void {
    if (this.size === 0) fn()
    else this.emptyWaiters.push(fn)
  }

  private checkEmpty(): void {
    if (this.size !== 0 || this.emptyWaiters.length === 0) return
    const waiters = this.emptyWaiters
    this.emptyWaiters = []
    for (const fn of waiters) fn()
  }

  /**
   * PUBACK: completes the publish with that identifier (refused if `reason` ≥ 0x80). False if no
   * publish in flight has it: a broker error the link reports.
   */
  puback(id: number, reason: number, reasonString?: string): boolean {
    const at = this.find(id)
    if (at < 0) return false
    // A QoS 2 publish answered with PUBACK: RabbitMQ 3.10 takes QoS 2 as QoS 1 and says so this way.
    this.complete(at, reason, reasonString)
    return true
  }

  /** PUBREC of a QoS 2 publish: PUBREL goes out (or the publish fails, reason ≥ 0x80). */
  pubrec(id: number, reason: number, reasonString?: string): boolean {
    const at = this.find(id)
    if (at < 0 || (this.flags[at]! & 3) !== 2) return false
    if (reason >= 0x80) {
      this.complete(at, reason, reasonString)
      return true
    }
    this.flags[at] = (this.flags[at]! & 7) | (RELEASED << 3)
    this.writer.packet(this.pubrel(id))
    return true
  }

  /**
   * PUBCOMP: the QoS 2 publish is done. "Packet identifier not found" (0x92) still means the broker
   * had it: it sent PUBREC before.
   */
  pubcomp(id: number, reason: number): boolean {
    const at = this.find(id)
    if (at < 0 || this.flags[at]! >> 3 !== RELEASED) return false
    this.complete(at, reason === ReasonCode.PACKET_IDENTIFIER_NOT_FOUND ? 0 : reason)
    return true
  }

  /** Answers every publish not yet answered with `err`, oldest first, and empties the outbox. */
  failAll(err: Error): void {
    this.disconnected()
    const all = this.waiting
    this.waiting = []
    this.waitingHead = 0
    for (const w of all) {
      if (w.id !== 0) this.ids_.release(w.id)
      w.done(err)
    }
    this.checkEmpty()
  }

  /** Writes what waits, oldest first, while the connection's limits allow. */
  private drain(): void {
    const limits = this.limits
    while (limits !== undefined && this.waitingHead < this.waiting.length) {
      const w = this.waiting[this.waitingHead]!
      if (w.released && limits.sessionPresent) {
        // The broker has the message and its PUBREC state: only the release is repeated.
        if (this.count >= limits.receiveMaximum) break
        this.enqueue(w.id, w.seq, w.topic, w.payload, 2, w.retain, w.done, RELEASED)
        this.writer.packet(this.pubrel(w.id))
      } else if (!this.send(w.topic, w.payload, w.qos, w.retain, w.done, w.seq, w.id, w.dup)) {
        break
      }
      this.waiting[this.waitingHead++] = undefined as unknown as Waiting
      if (this.waitingHead === this.waiting.length) {
        this.waiting = []
        this.waitingHead = 0
      }
    }
  }

  /** Writes a publish now; false (nothing done) when the broker's limits say it must wait. */
  private send(
    topic: string,
    payload: string | Buffer,
    wantedQos: 0 | 1 | 2,
    wantedRetain: boolean,
    done: PublishDone,
    seq: number,
    knownId: number,
    dup: boolean,
  ): boolean {
    const limits = this.limits!
    const qos = wantedQos > limits.maximumQos ? limits.maximumQos : wantedQos
    const retain = wantedRetain && limits.retainAvailable
    if (qos > 0 && this.count >= limits.receiveMaximum) return false
    const topicLength = Buffer.byteLength(topic)
    const payloadLength = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    const remaining = publishRemainingLength(limits.level, topicLength, qos, payloadLength)
    if (topicLength > 0xffff || 1 + varIntSize(remaining) + remaining > limits.maximumPacketSize) {
      if (knownId !== 0) this.ids_.release(knownId)
      done(publishRefused(ReasonCode.PACKET_TOO_LARGE, topic, 'larger than the broker accepts'))
      return true
    }
    let id = 0
    if (qos > 0) {
      const allocated = knownId !== 0 ? knownId : this.ids_.allocate()
      if (allocated === null) return false // every identifier in use: wait for an acknowledgement
      id = allocated
    } else if (knownId !== 0) {
      this.ids_.release(knownId) // downgraded to QoS 0 by a broker's Maximum QoS
    }
    this.writer.publish(limits.level, topic, topicLength, payload, qos, retain, dup && qos > 0, id, remaining)
    if (qos === 0) this.zero.push(topic, payload, retain, done, seq)
    else this.enqueue(id, seq, topic, payload, qos, wantedRetain, done, WRITTEN)
    return true
  }

  private find(id: number): number {
    const mask = this.ids.length - 1
    // Brokers acknowledge in the order of the publishes (MQTT 3.1.1 4.6): the oldest, nearly always.
    for (let k = 0; k < this.count; k++) {
      const at = (this.head + k) & mask
      if (this.ids[at] === id) return at
    }
    return -1
  }

  private complete(at: number, reason: number, reasonString?: string): void {
    const mask = this.ids.length - 1
    const done = this.dones[at]!
    const topic = this.topics[at]!
    const id = this.ids[at]!
    // Close the gap (none unless the broker answered out of order): later entries keep their order.
    for (let j = (at - this.head) & mask; j > 0; j--)
      this.move((this.head + j - 1) & mask, (this.head + j) & mask)
    this.clear(this.head)
    this.head = (this.head + 1) & mask
    this.count--
    this.ids_.release(id)
    if (reason >= 0x80) done(publishRefused(reason, topic, reasonString))
    else done()
    if (this.waitingHead < this.waiting.length) this.drain()
    else this.checkEmpty()
  }

  private enqueue(
    id: number,
    seq: number,
    topic: string,
    payload: string | Buffer,
    qos: 0 | 1 | 2,
    retain: boolean,
    done: PublishDone,
    state: number,
  ): void {
    if (this.count === this.ids.length) this.grow()
    const at = (this.head + this.count) & (this.ids.length - 1)
    this.ids[at] = id
    this.seqs[at] = seq
    this.flags[at] = qos | (retain ? 4 : 0) | (state << 3)
    this.topics[at] = topic
    this.payloads[at] = payload
    this.dones[at] = done
    this.count++
  }

  private grow(): void {
    const capacity = this.ids.length * 2
    const mask = this.ids.length - 1
    const ids = new Uint16Array(capacity)
    const seqs = new Float64Array(capacity)
    const flags = new Uint8Array(capacity)
    const topics: (string | undefined)[] = new Array(capacity)
    const payloads: (string | Buffer | undefined)[] = new Array(capacity)
    const dones: (PublishDone | undefined)[] = new Array(capacity)
    for (let k = 0; k < this.count; k++) {
      const at = (this.head + k) & mask
      ids[k] = this.ids[at]!
      seqs[k] = this.seqs[at]!
      flags[k] = this.flags[at]!
      topics[k] = this.topics[at]
      payloads[k] = this.payloads[at]
      dones[k] = this.dones[at]
    }
    this.ids = ids
    this.seqs = seqs
    this.flags = flags
    this.topics = topics
    this.payloads = payloads
    this.dones = dones
    this.head = 0
  }

  private move(from: number, to: number): void {
    this.ids[to] = this.ids[from]!
    this.seqs[to] = this.seqs[from]!
    this.flags[to] = this.flags[from]!
    this.topics[to] = this.topics[from]
    this.payloads[to] = this.payloads[from]
    this.dones[to] = this.dones[from]
  }

  /** Drops a slot's references (payloads can be large; callbacks hold sessions). */
  private clear(at: number): void {
    this.topics[at] = undefined
    this.payloads[at] = undefined
    this.dones[at] = undefined
  }
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

  get length(): number {
    return this.count
  }

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

  /** All of them, oldest first, as waiting publishes, and the list empty. */
  take(): Waiting[] {
    const out: Waiting[] = []
    for (let k = 0; k < this.count; k++) {
      out.push({
        topic: this.topics[k]!,
        payload: this.payloads[k]!,
        qos: 0,
        retain: this.retains[k]!,
        done: this.dones[k]!,
        seq: this.seqs[k]!,
        id: 0,
        dup: false,
        released: false,
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
