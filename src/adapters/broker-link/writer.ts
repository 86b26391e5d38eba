/**
 * What the link sends the broker, in order, one socket write per event-loop turn: PUBLISH and
 * PUBACK are encoded straight into a shared slab (no packet object, no per-field stream writes:
 * they are the hot paths, one per message), every other packet is encoded by mqtt-packet and
 * copied in behind them. The profile of 100 devices through Mosquitto put a third of the gateway's
 * CPU in MQTT.js's publish path (a packet object, option merging, about six stream writes and
 * debug calls per publish) before the gateway encoded its own.
 *
 * Pure: it writes to whatever sink it is attached to, and schedules its flush with the function
 * it is given.
 */

/** Where the bytes go: the broker connection. */
export interface ByteSink {
  write(chunk: Buffer): boolean
}

const SLAB_SIZE = 64 * 1024
/** Packets larger than this skip the slab: written on their own after what is before them. */
const LARGE = 16 * 1024

export type ProtocolLevel = 4 | 5

export class PacketWriter {
  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE)
  /** Bytes of the slab already handed to the sink (or dropped). */
  private start = 0
  /** End of the bytes encoded so far. */
  private end = 0
  private sink: ByteSink | undefined
  private scheduled = false
  private readonly flushNow = (): void => {
    this.scheduled = false
    this.flush()
  }

  /**
   * @param schedule runs a function once the current event-loop turn's work is done
   * @param onFlushed called after each write of encoded bytes to the sink (the outbox answers the
   *   QoS 0 publishes they held)
   */
  constructor(
    private readonly schedule: (fn: () => void) => void,
    private readonly onFlushed: () => void,
  ) {}

  /** From now on bytes go to `sink`. */
  attach(sink: ByteSink): void {
    this.sink = sink
  }

  /** The connection is gone: bytes not yet written are dropped, and nothing is written until `attach`. */
  detach(): void {
    this.sink = undefined
    this.start = this.end
  }

  get attached(): boolean {
    return this.sink !== undefined
  }

  /**
   * A PUBLISH (MQTT 3.1.1 3.3 / MQTT 5 3.3, no properties). `remaining` is its remaining length,
   * computed by the caller with {@link publishRemainingLength}.
   */
  publish(
    level: ProtocolLevel,
    topic: string,
    topicLength: number,
    payload: string | Buffer,
    qos: 0 | 1 | 2,
    retain: boolean,
    dup: boolean,
    id: number,
    remaining: number,
  ): void {
    const b = this.reserve(1 + varIntSize(remaining) + remaining)
    let o = this.end
    b[o++] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)
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
    if (qos > 0) {
      b[o++] = id >> 8
      b[o++] = id & 0xff
    }
    if (level === 5) b[o++] = 0 // property length: none
    if (typeof payload === 'string') o += b.write(payload, o)
    else o += payload.copy(b, o)
    this.end = o
    this.scheduleFlush()
  }

  /** A PUBACK with success (MQTT 5 3.4.2.1: reason code and properties may be left out). */
  puback(id: number): void {
    const b = this.reserve(4)
    const o = this.end
    b[o] = 0x40
    b[o + 1] = 2
    b[o + 2] = id >> 8
    b[o + 3] = id & 0xff
    this.end = o + 4
    this.scheduleFlush()
  }

  /** Any other packet, already encoded (by mqtt-packet), after everything before it. */
  packet(bytes: Buffer): void {
    if (bytes.length > LARGE) {
      this.flush()
      this.sink?.write(bytes)
      return
    }
    bytes.copy(this.reserve(bytes.length), this.end)
    this.end += bytes.length
    this.scheduleFlush()
  }

  /** Hands what is encoded to the sink now (without a sink it waits for `detach` to drop it). */
  flush(): void {
    if (this.end === this.start || this.sink === undefined) return
    const chunk = this.slab.subarray(this.start, this.end)
    this.start = this.end
    this.sink.write(chunk)
    this.onFlushed()
  }

  /** The slab, with room for `size` more bytes at `end` (a new one when full). */
  private reserve(size: number): Buffer {
    if (this.slab.length - this.end < size) {
      this.flush()
      // Bytes handed to the sink may still be queued by it: a new slab, never one reused.
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, size))
      this.start = 0
      this.end = 0
    }
    return this.slab
  }

  private scheduleFlush(): void {
    if (this.scheduled) return
    this.scheduled = true
    this.schedule(this.flushNow)
  }
}

/** The remaining length of a PUBLISH without properties. */
export function publishRemainingLength(
  level: ProtocolLevel,
  topicLength: number,
  qos: number,
  payloadLength: number,
): number {
  return 2 + topicLength + (qos > 0 ? 2 : 0) + (level === 5 ? 1 : 0) + payloadLength
}

export function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}
