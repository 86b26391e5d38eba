/**
 * Splits the broker's byte stream into MQTT packets (fixed header, remaining length, body) —
 * MQTT 3.1.1 2.2 / MQTT 5 2.1, which have the same framing.
 *
 * - A packet wholly inside one chunk is handed out in place, as offsets into that chunk: no copy,
 *   no object. Only a packet split across chunks is assembled, into a buffer of exactly its size.
 * - A packet larger than `maxPacketSize` is refused when its header is complete, before any byte of
 *   its body is buffered: its body is skipped as it arrives and `onOversize` is told (the link
 *   decides whether that ends the connection).
 * - A fifth remaining-length byte (malformed, 2.2.3) is the reader's one error: after it the reader
 *   is inert, as after {@link stop}.
 *
 * What the packets mean is not its business: the link reads PUBACK and PUBLISH itself (the hot
 * paths) and gives every other packet to mqtt-packet. Pure: no sockets, no clock, no logging. Not
 * re-entrant: `onPacket` must not call `push`.
 */
export interface PacketSink {
  /**
   * One complete packet: `buf[start, end)` is all of it (fixed header included), `bodyStart` where
   * its variable header begins. Offsets into the input rather than a view of it: a packet costs no
   * object (one PUBACK per uplink). `buf` is never written to afterwards by the reader, so parts of
   * it may be kept.
   */
  onPacket(first: number, buf: Buffer, start: number, bodyStart: number, end: number): void
  /**
   * A packet of `length` body bytes was announced over the size limit: its body is skipped, but for
   * its first bytes (`head`: up to {@link OVERSIZE_HEAD}, enough for a PUBLISH's topic and packet
   * identifier, so that it can still be acknowledged).
   */
  onOversize(first: number, length: number, head: Buffer): void
  /** The stream cannot be framed (a malformed remaining length). */
  onMalformed(reason: string): void
}

/** The largest remaining length MQTT can express: four length bytes (MQTT 3.1.1 2.2.3). */
export const MAX_REMAINING_LENGTH = 268_435_455

/** Bytes of a refused packet's body kept for {@link PacketSink.onOversize}. */
export const OVERSIZE_HEAD = 1024

export class PacketReader {
  /** Inside a fixed header: its bytes so far (type byte and length bytes), else 0. */
  private headerFill = 0
  private readonly header = Buffer.allocUnsafe(5)
  /** A packet being assembled across chunks, and how much of it is there. */
  private packet: Buffer | null = null
  private packetFill = 0
  private bodyStart = 0
  /** Body bytes of a refused packet still to skip, and the first of them, kept. */
  private skip = 0
  private head: Buffer | null = null
  private headFill = 0
  private refusedFirst = 0
  private refusedLength = 0
  private stopped = false

  constructor(
    private readonly maxPacketSize: number,
    private readonly sink: PacketSink,
  ) {}

  /** Reads nothing more: what is pushed from now on is dropped. */
  stop(): void {
    this.stopped = true
    this.packet = null
  }

  push(chunk: Buffer): void {
    const end = chunk.length
    let off = 0
    while (off < end && !this.stopped) {
      if (this.skip > 0) {
        const head = this.head
        let n = Math.min(this.skip, end - off)
        if (head !== null) {
          n = Math.min(n, head.length - this.headFill)
          chunk.copy(head, this.headFill, off, off + n)
          this.headFill += n
          if (this.headFill === head.length) {
            this.head = null
            this.sink.onOversize(this.refusedFirst, this.refusedLength, head)
          }
        }
        this.skip -= n
        off += n
        continue
      }
      const packet = this.packet
      if (packet !== null) {
        const n = Math.min(packet.length - this.packetFill, end - off)
        chunk.copy(packet, this.packetFill, off, off + n)
        this.packetFill += n
        off += n
        if (this.packetFill === packet.length) {
          this.packet = null
          this.sink.onPacket(packet[0]!, packet, 0, this.bodyStart, packet.length)
        }
        continue
      }
      if (this.headerFill === 0) {
        // Fast path: a whole header, and often the whole packet, in this chunk.
        const at = off
        let length = 0
        let multiplier = 1
        let i = off + 1
        let complete = false
        while (i < end && i - off <= 4) {
          const b = chunk[i++]!
          length += (b & 0x7f) * multiplier
          multiplier *= 128
          if ((b & 0x80) === 0) {
            complete = true
            break
          }
        }
        if (complete) {
          const bodyStart = i - at
          if (!this.accept(chunk[at]!, bodyStart, length)) {
            off = i
            continue
          }
          const size = bodyStart + length
          if (end - at >= size) {
            off = at + size
            this.sink.onPacket(chunk[at]!, chunk, at, at + bodyStart, at + size)
          } else {
            this.begin(chunk.subarray(at, end), size, bodyStart)
            off = end
          }
          continue
        }
        if (i - off > 4) return this.malformed()
        // The header straddles chunks: keep its bytes.
        chunk.copy(this.header, 0, off, end)
        this.headerFill = end - off
        return
      }
      // Continue a header split across chunks.
      const b = chunk[off++]!
      this.header[this.headerFill++] = b
      if ((b & 0x80) !== 0) {
        if (this.headerFill === 5) return this.malformed()
        continue
      }
      let length = 0
      let multiplier = 1
      for (let k = 1; k < this.headerFill; k++) {
        length += (this.header[k]! & 0x7f) * multiplier
        multiplier *= 128
      }
      const bodyStart = this.headerFill
      this.headerFill = 0
      const first = this.header[0]!
      if (!this.accept(first, bodyStart, length)) continue
      if (length === 0) {
        const packet = Buffer.from(this.header.subarray(0, bodyStart))
        this.sink.onPacket(first, packet, 0, bodyStart, bodyStart)
        continue
      }
      this.begin(this.header.subarray(0, bodyStart), bodyStart + length, bodyStart)
    }
  }

  /**
   * Whether a packet is read (else its body is skipped, and reported). The limit is on the whole
   * packet, fixed header included, as MQTT 5's Maximum Packet Size (3.1.2.11.4).
   */
  private accept(first: number, headerSize: number, length: number): boolean {
    if (headerSize + length <= this.maxPacketSize) return true
    this.skip = length
    this.head = Buffer.allocUnsafe(Math.min(length, OVERSIZE_HEAD))
    this.headFill = 0
    this.refusedFirst = first
    this.refusedLength = length
    return false
  }

  private begin(start: Buffer, size: number, bodyStart: number): void {
    const packet = Buffer.allocUnsafe(size)
    start.copy(packet, 0)
    this.packet = packet
    this.packetFill = start.length
    this.bodyStart = bodyStart
  }

  private malformed(): void {
    this.stop()
    this.sink.onMalformed('a remaining length of more than four bytes')
  }
}
