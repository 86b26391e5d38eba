import type { Duplex } from 'node:stream'

/**
 * Follows an MQTT byte stream packet by packet, reading only fixed headers (type byte, remaining
 * length in 1–4 bytes: MQTT 3.1.1 2.2, MQTT 5 2.1) and skipping bodies by arithmetic, to tell the
 * first packet that announces more than `max` body bytes — before anything buffers it. Nothing is
 * copied or kept: a few numbers of state. Pure: no sockets.
 */
export class PacketSizeScanner {
  /** Body bytes of the current packet still to pass. */
  private skip = 0
  /** Inside a remaining length: its value so far, the next byte's weight, and whether we are in it. */
  private length = 0
  private weight = 1
  private inLength = false
  /** Set once a verdict is given: the scanner says nothing more. */
  private done = false

  constructor(private readonly max: number) {}

  /**
   * Reads the next chunk. Returns the announced body size of the first packet over the limit, -1 for
   * a malformed remaining length (a fifth length byte), or 0 while all is well.
   */
  push(chunk: Uint8Array): number {
    if (this.done) return 0
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - i)
        this.skip -= step
        i += step
        continue
      }
      if (!this.inLength) {
        // The type byte of the next packet.
        this.inLength = true
        this.length = 0
        this.weight = 1
        i++
        continue
      }
      const byte = chunk[i++]!
      this.length += (byte & 0x7f) * this.weight
      if (byte & 0x80) {
        this.weight *= 128
        if (this.weight > 128 ** 3) return this.verdict(-1)
        continue
      }
      this.inLength = false
      if (this.length > this.max) return this.verdict(this.length)
      this.skip = this.length
    }
    return 0
  }

  private verdict(value: number): number {
    this.done = true
    return value
  }
}

/**
 * Watches what a broker client sends and destroys its connection at the first packet announcing
 * more than `max` body bytes, or at a malformed length. Aedes has no packet size limit (its issue
 * 831 is open) and its parser buffers a packet whole, so a 200 MB PUBLISH would sit in memory.
 *
 * Attach it after `aedes.handle(stream)`: Aedes reads with `read()` from a `'readable'` listener, so
 * this `'data'` listener neither starts the flow nor changes it, and sees each chunk as Aedes reads
 * it, before its parser does (Node emits `'data'` inside `read()`, before returning the chunk).
 */
export function guardPacketSize(
  stream: Duplex,
  max: number,
  onRefused: (announced: number | 'malformed') => void,
): void {
  const scanner = new PacketSizeScanner(max)
  const watch = (chunk: Buffer) => {
    const verdict = scanner.push(chunk)
    if (verdict === 0) return
    stream.off('data', watch)
    onRefused(verdict === -1 ? 'malformed' : verdict)
    stream.destroy()
  }
  stream.on('data', watch)
}
