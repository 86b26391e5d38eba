import type { Readable } from 'node:stream'

/** PUBACK, MQTT 3.1.1 3.4: type 4, flags 0, remaining length 2, packet identifier. */
const PUBACK = 0x40
const PUBACK_LENGTH = 2

/**
 * Takes the PUBACKs of the gateway's own publishes (publish-pipeline.ts) out of the broker's byte
 * stream before MQTT.js parses it, and passes everything else on unchanged.
 *
 * At full load nearly everything the broker sends the gateway is PUBACKs, a few per read, and
 * MQTT.js spends more on each (a BufferList, a parsed packet object, a `process.nextTick`, debug
 * calls) than the gateway spends on the uplink it completes. Here a PUBACK costs a comparison
 * and a lookup.
 *
 * Only PUBACKs at the start of a chunk are taken (and only while `acknowledge` knows their
 * identifier): once a chunk has another packet, or a PUBACK that is MQTT.js's own, the rest of it
 * goes to MQTT.js, so MQTT.js sees its packets in the broker's order and handles any PUBACK it
 * meets. To know where a chunk starts, the tap follows the packet boundaries (fixed header and
 * remaining length) of what it passes on. A stream it cannot follow (a malformed length, a
 * string chunk) is passed on whole from then on: MQTT.js reports it as it always did.
 */
export class PubackTap {
  /** Bytes still to come of a packet being passed on. */
  private remaining = 0
  /** Inside a fixed header, after the type byte: the remaining length read so far. */
  private inHeader = false
  private length = 0
  private multiplier = 1
  private lengthBytes = 0
  private lost = false

  /** @param acknowledge completes the publish with that identifier; false if it is not one. */
  constructor(private readonly acknowledge: (id: number) => boolean) {}

  /** The part of `chunk` MQTT.js is to read: all of it, its tail, or undefined for nothing. */
  take(chunk: Buffer): Buffer | undefined {
    if (this.lost) return chunk
    const n = chunk.length
    let i = 0
    if (this.remaining === 0 && !this.inHeader) {
      while (
        i + 2 + PUBACK_LENGTH <= n &&
        chunk[i] === PUBACK &&
        chunk[i + 1] === PUBACK_LENGTH &&
        this.acknowledge((chunk[i + 2]! << 8) | chunk[i + 3]!)
      ) {
        i += 2 + PUBACK_LENGTH
      }
      if (i === n) return undefined
    }
    this.follow(chunk, i)
    return i === 0 ? chunk : chunk.subarray(i)
  }

  /** Stops taking anything: the stream is no longer followed. */
  giveUp(): void {
    this.lost = true
  }

  /** Moves past the packets (whole or partial) in `chunk` from `from` on. */
  private follow(chunk: Buffer, from: number): void {
    const n = chunk.length
    let i = from
    while (i < n) {
      if (this.remaining > 0) {
        const step = Math.min(this.remaining, n - i)
        this.remaining -= step
        i += step
      } else if (!this.inHeader) {
        this.inHeader = true // the type byte
        this.length = 0
        this.multiplier = 1
        this.lengthBytes = 0
        i++
      } else {
        const b = chunk[i++]!
        this.length += (b & 0x7f) * this.multiplier
        this.multiplier *= 128
        this.lengthBytes++
        if ((b & 0x80) === 0) {
          this.inHeader = false
          this.remaining = this.length
        } else if (this.lengthBytes === 4) {
          this.lost = true // a fifth length byte: malformed (MQTT 3.1.1 2.2.3)
          return
        }
      }
    }
  }
}

/**
 * Installs a {@link PubackTap} on a stream MQTT.js reads from: what the stream receives goes
 * through the tap before it is pushed to its reader (`stream.pipe` in MQTT.js). Node's sockets
 * (net, tls) and MQTT.js's WebSocket stream all hand received data to `push`.
 */
export function tapPubacks(stream: Readable, acknowledge: (id: number) => boolean): void {
  const tap = new PubackTap(acknowledge)
  const push = stream.push
  stream.push = function tappedPush(this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) return push.call(this, chunk, encoding)
    if (!Buffer.isBuffer(chunk)) {
      tap.giveUp()
      return push.call(this, chunk, encoding)
    }
    const rest = tap.take(chunk)
    return rest === undefined ? true : push.call(this, rest, encoding)
  }
}
