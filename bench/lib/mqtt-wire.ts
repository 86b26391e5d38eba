/**
 * Just enough MQTT 3.1.1 for the benchmark's own clients (the counting subscriber, the downlink
 * publisher and the raw direct publishers): CONNECT, SUBSCRIBE, PUBLISH, PUBACK, DISCONNECT, and a
 * streaming parser that hands out packets as views of the input. Written so that these clients
 * cost far less than what they measure: pre-encoded packets, no allocation per packet.
 */

export const MqttType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBACK: 11,
  PINGRESP: 13,
} as const

function remainingLengthSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

function writeRemainingLength(buf: Buffer, off: number, n: number): number {
  let v = n
  let o = off
  do {
    let byte = v % 128
    v = Math.floor(v / 128)
    if (v > 0) byte |= 0x80
    buf[o++] = byte
  } while (v > 0)
  return o
}

function packet(firstByte: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + remainingLengthSize(body.length) + body.length)
  out[0] = firstByte
  const off = writeRemainingLength(out, 1, body.length)
  body.copy(out, off)
  return out
}

function utf8Field(text: string): Buffer {
  const bytes = Buffer.from(text)
  const out = Buffer.allocUnsafe(2 + bytes.length)
  out.writeUInt16BE(bytes.length, 0)
  bytes.copy(out, 2)
  return out
}

/** CONNECT, clean session. `keepalive` 0 switches the broker's keepalive check off. */
export function encodeConnect(clientId: string, keepalive = 0): Buffer {
  const header = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, keepalive >> 8, keepalive & 0xff])
  return packet(0x10, Buffer.concat([header, utf8Field(clientId)]))
}

export function encodeSubscribe(packetId: number, topic: string, qos: number): Buffer {
  const id = Buffer.from([packetId >> 8, packetId & 0xff])
  return packet(0x82, Buffer.concat([id, utf8Field(topic), Buffer.from([qos])]))
}

export const DISCONNECT = Buffer.from([0xe0, 0])

/** Writes a PUBACK for `packetId` at `off` (4 bytes). */
export function writePuback(buf: Buffer, off: number, packetId: number): void {
  buf[off] = 0x40
  buf[off + 1] = 2
  buf[off + 2] = packetId >> 8
  buf[off + 3] = packetId & 0xff
}

/** A pre-encoded PUBLISH whose packet id and payload are patched in place before each send. */
export interface PublishTemplate {
  readonly bytes: Buffer
  /** Offset of the 2-byte packet id (QoS > 0), or -1. */
  readonly packetIdOffset: number
  readonly payloadOffset: number
}

export function publishTemplate(topic: string, payloadLength: number, qos: 0 | 1): PublishTemplate {
  const topicField = utf8Field(topic)
  const remaining = topicField.length + (qos > 0 ? 2 : 0) + payloadLength
  const bytes = Buffer.alloc(1 + remainingLengthSize(remaining) + remaining)
  bytes[0] = 0x30 | (qos << 1)
  let off = writeRemainingLength(bytes, 1, remaining)
  topicField.copy(bytes, off)
  off += topicField.length
  const packetIdOffset = qos > 0 ? off : -1
  if (qos > 0) off += 2
  return { bytes, packetIdOffset, payloadOffset: off }
}

/**
 * One packet: `type` and the fixed header's flags, and the packet's variable header + payload as
 * `buf[start, end)`: valid only during the call.
 */
export type PacketHandler = (type: number, flags: number, buf: Buffer, start: number, end: number) => void

/**
 * Streaming MQTT packet parser: any split of the stream gives the same packets. A packet wholly
 * inside one chunk is handed out as a view of it; only a packet split across chunks is copied.
 */
export class MqttParser {
  private readonly onPacket: PacketHandler
  /** Fixed header bytes of a packet whose header straddles chunks (at most 5). */
  private readonly head = Buffer.alloc(5)
  private headFill = 0
  /** Body of a packet split across chunks. */
  private body: Buffer | null = null
  private bodyFill = 0
  private first = 0

  constructor(onPacket: PacketHandler) {
    this.onPacket = onPacket
  }

  push(chunk: Buffer): void {
    const end = chunk.length
    let off = 0
    while (off < end) {
      const body = this.body
      if (body !== null) {
        const n = Math.min(body.length - this.bodyFill, end - off)
        chunk.copy(body, this.bodyFill, off, off + n)
        this.bodyFill += n
        off += n
        if (this.bodyFill === body.length) {
          this.body = null
          this.onPacket(this.first >> 4, this.first & 15, body, 0, body.length)
        }
        continue
      }
      if (this.headFill === 0) {
        // Fast path: a whole fixed header in this chunk.
        const parsed = this.header(chunk, off, end)
        if (parsed >= 0) {
          const length = this.length
          const first = chunk[off]!
          off = parsed
          if (end - off >= length) {
            this.onPacket(first >> 4, first & 15, chunk, off, off + length)
            off += length
          } else {
            this.first = first
            this.body = Buffer.allocUnsafe(length)
            this.bodyFill = 0
          }
          continue
        }
      }
      // Slow path: the fixed header straddles chunks; gather it byte by byte.
      this.head[this.headFill++] = chunk[off++]!
      const parsed = this.header(this.head, 0, this.headFill)
      if (parsed < 0) continue
      this.headFill = 0
      this.first = this.head[0]!
      if (this.length === 0) this.onPacket(this.first >> 4, this.first & 15, this.head, 0, 0)
      else {
        this.body = Buffer.allocUnsafe(this.length)
        this.bodyFill = 0
      }
    }
  }

  private length = 0

  /** Parses a fixed header at `off`; returns the body's offset, or -1 if incomplete. */
  private header(buf: Buffer, off: number, end: number): number {
    let length = 0
    let mul = 1
    for (let i = off + 1; i < end && i < off + 5; i++) {
      const b = buf[i]!
      length += (b & 0x7f) * mul
      if ((b & 0x80) === 0) {
        this.length = length
        return i + 1
      }
      mul *= 128
    }
    return -1
  }
}
