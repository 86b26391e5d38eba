import type { FrameHandler } from './decoder.js'

/**
 * Framings without a header, for devices the gateway dials (`dialOut`): text lines, and raw bytes
 * in chunks. Like the HyperTCP decoder, they stop delivering when the handler returns `false`
 * (backpressure) and hold what arrives meanwhile, and never hold more than `maxFrameSize` of a
 * frame in progress.
 */

/** A line, and a line cut at `maxFrameSize` (its first bytes; the rest, to its end, is dropped). */
export const LINE = 1
export const LINE_CUT = 2
/** Bytes as they came. */
export const CHUNK = 1

const NL = 0x0a
const CR = 0x0d

abstract class HeldInput {
  private held: Buffer[] = []
  private paused = false

  constructor(
    protected readonly maxFrameSize: number,
    protected readonly onFrame: FrameHandler,
  ) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    if (this.paused || this.held.length > 0) this.held.push(chunk)
    else this.feed(chunk)
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
    while (!this.paused && this.held.length > 0) this.feed(this.held.shift()!)
  }

  /** Delivers one frame; false when the handler wants no more for now. */
  protected emit(type: number, body: Buffer): boolean {
    if (this.onFrame(type, 0, body, body.length) === false) this.paused = true
    return !this.paused
  }

  /** Keeps the rest of a chunk for {@link resume}. */
  protected hold(rest: Buffer): void {
    if (rest.length > 0) this.held.unshift(rest)
  }

  protected abstract feed(chunk: Buffer): void
}

/** Text lines ending in `\n` (a `\r` before it is dropped); empty lines are skipped. */
export class LineDecoder extends HeldInput {
  /** The start of the line in progress (at most maxFrameSize bytes). */
  private parts: Buffer[] = []
  private partBytes = 0
  /** The line in progress was cut: drop up to its end. */
  private cutting = false

  get partial(): number {
    return this.partBytes
  }

  protected feed(chunk: Buffer): void {
    let off = 0
    while (off < chunk.length) {
      const nl = chunk.indexOf(NL, off)
      const end = nl < 0 ? chunk.length : nl
      if (!this.cutting) {
        const room = this.maxFrameSize - this.partBytes
        if (end - off > room) {
          // Longer than a frame may be: what fits goes out now, cut; the rest of it is dropped.
          this.parts.push(chunk.subarray(off, off + room))
          const line = this.take()
          this.cutting = true
          if (!this.emit(LINE_CUT, line)) return this.hold(chunk.subarray(nl < 0 ? chunk.length : nl))
        } else if (end > off) {
          this.parts.push(chunk.subarray(off, end))
          this.partBytes += end - off
        }
      }
      if (nl < 0) {
        // Unfinished: keep our own copy, the socket's chunk is not ours past this call.
        if (this.parts.length > 0 && !this.cutting) this.parts = [Buffer.from(this.take())]
        if (this.parts.length > 0) this.partBytes = this.parts[0]!.length
        return
      }
      off = nl + 1
      if (this.cutting) {
        this.cutting = false
        continue
      }
      let line = this.take()
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1)
      if (line.length > 0 && !this.emit(LINE, line)) return this.hold(chunk.subarray(off))
    }
  }

  /** The line in progress, in one buffer; clears it. */
  private take(): Buffer {
    const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)
    this.parts = []
    this.partBytes = 0
    return line
  }
}

/** Bytes as they come, in chunks of at most `maxFrameSize`. */
export class ChunkDecoder extends HeldInput {
  get partial(): number {
    return 0
  }

  protected feed(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; off += this.maxFrameSize) {
      const end = Math.min(chunk.length, off + this.maxFrameSize)
      if (!this.emit(CHUNK, chunk.subarray(off, end))) return this.hold(chunk.subarray(end))
    }
  }
}
