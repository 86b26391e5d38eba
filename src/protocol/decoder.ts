import { GatewayError } from '../errors.js'
import { Cmd, HEADER_SIZE } from './constants.js'

/**
 * Receives decoded frames. `body` is a view into the decoder's input and is only valid during the
 * call: a handler that keeps it must copy it. `length` is the header's length field: the body
 * size, except for a device-side RESPONSE, where it is the status ([HT-2.7]). Returning `false`
 * pauses the decoder (see {@link FrameDecoder.pause}); the bytes not yet decoded are kept until
 * {@link FrameDecoder.resume}.
 */
export type FrameHandler = (type: number, msgId: number, body: Buffer, length: number) => boolean | undefined

/**
 * Which end of the connection decodes.
 * - `gateway` (default): every frame's body is `length` bytes ([HT-1.1]).
 * - `device`: the stream a device reads. A RESPONSE has no body and its length field is the status
 *   ([HT-2.7]), except the login reply, which carries one status byte ([HT-2.1]): set
 *   {@link FrameDecoder.expectLoginReply} after sending LOGIN.
 */
export type DecoderSide = 'gateway' | 'device'

/** The decoder's one error: a header announced more than `maxBody` bytes ([HT-1.3]). */
export class FrameTooLargeError extends GatewayError {
  readonly type: number
  readonly msgId: number
  readonly length: number

  constructor(type: number, msgId: number, length: number, maxBody: number) {
    // A flood of oversize headers makes one of these per connection: no stack trace (it would
    // only ever point here, and capturing it costs more than the rest of the refusal).
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super('HT_ERR_FRAME_TOO_LARGE', `frame announces ${length} body bytes, limit is ${maxBody}`)
    Error.stackTraceLimit = limit
    this.name = 'FrameTooLargeError'
    this.type = type
    this.msgId = msgId
    this.length = length
  }
}

const EMPTY = Buffer.alloc(0)

/**
 * Push-based HyperTCP frame decoder ([HT-1.1], [HT-1.4]): feed it TCP chunks of any size, it calls
 * `onFrame` once per complete frame, in order, for any split of the same bytes.
 *
 * - A frame wholly inside one chunk is delivered as a view of that chunk: no copy, no allocation.
 *   Only a frame split across chunks is assembled, into a buffer of exactly its body size.
 * - A header announcing more than `maxBody` bytes is rejected as soon as the header is complete,
 *   before any body byte is buffered ([HT-1.3]). After that one error the decoder is inert: no
 *   frame and no further error is ever delivered.
 *
 * Pure: no sockets, no clock, no logging. Not re-entrant: do not call `push` from `onFrame`.
 */
export class FrameDecoder {
  readonly maxBody: number
  readonly side: DecoderSide
  /** Device side only: the next RESPONSE of length 1 is the login reply and has a status byte. */
  expectLoginReply = false
  private readonly onFrame: FrameHandler
  private readonly onError: (err: FrameTooLargeError) => void

  /** Scratch for a header split across chunks; allocated the first time that happens. */
  private header: Buffer | undefined
  private headerFill = 0
  private type = 0
  private msgId = 0
  private length = 0
  /** Body being assembled across chunks, or null while reading a header. */
  private body: Buffer | null = null
  private bodyFill = 0
  /** Undecoded input held while paused, oldest first. */
  private pending: Buffer[] = []
  private pendingBytes = 0
  private _paused = false
  private _failed = false

  constructor(
    maxBody: number,
    onFrame: FrameHandler,
    onError: (err: FrameTooLargeError) => void,
    side: DecoderSide = 'gateway',
  ) {
    this.maxBody = maxBody
    this.onFrame = onFrame
    this.onError = onError
    this.side = side
  }

  get paused(): boolean {
    return this._paused
  }

  get failed(): boolean {
    return this._failed
  }

  /** Bytes of the frame being assembled (0 between frames). */
  get partial(): number {
    return this.headerFill + this.bodyFill
  }

  /** Bytes received but not yet delivered (a partial frame plus anything held while paused). */
  get buffered(): number {
    return this.headerFill + this.bodyFill + this.pendingBytes
  }

  push(chunk: Buffer): void {
    if (this._failed || chunk.length === 0) return
    if (this._paused || this.pending.length > 0) {
      this.hold(chunk)
      return
    }
    this.feed(chunk)
  }

  /** Stop delivering frames; input pushed meanwhile is held, undecoded, until `resume`. */
  pause(): void {
    this._paused = true
  }

  /** Deliver what was held, then carry on with new input. */
  resume(): void {
    this._paused = false
    while (!this._paused && !this._failed && this.pending.length > 0) {
      const chunk = this.pending.shift()!
      this.pendingBytes -= chunk.length
      this.feed(chunk)
    }
  }

  private hold(chunk: Buffer): void {
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
  }

  private feed(chunk: Buffer): void {
    const end = chunk.length
    let off = 0
    while (off < end) {
      if (this._paused) {
        // Keep the rest ahead of anything already held: order is the contract.
        const rest = chunk.subarray(off)
        this.pending.unshift(rest)
        this.pendingBytes += rest.length
        return
      }
      const body = this.body
      if (body !== null) {
        const n = Math.min(body.length - this.bodyFill, end - off)
        chunk.copy(body, this.bodyFill, off, off + n)
        this.bodyFill += n
        off += n
        if (this.bodyFill === body.length) {
          this.body = null
          this.bodyFill = 0
          this.deliver(this.type, this.msgId, body, this.length)
        }
        continue
      }
      if (this.headerFill === 0 && end - off >= HEADER_SIZE) {
        // Fast path: the whole header is in this chunk.
        const type = chunk[off]!
        const msgId = (chunk[off + 1]! << 8) | chunk[off + 2]!
        const length = (chunk[off + 3]! << 8) | chunk[off + 4]!
        off += HEADER_SIZE
        const size = this.start(type, msgId, length)
        if (size < 0) return
        if (end - off >= size) {
          const view = size === 0 ? EMPTY : chunk.subarray(off, off + size)
          off += size
          this.deliver(type, msgId, view, length)
        } else {
          this.body = Buffer.allocUnsafe(size)
        }
        continue
      }
      // Slow path: the header straddles chunks.
      this.header ??= Buffer.allocUnsafe(HEADER_SIZE)
      const h = this.header
      const n = Math.min(HEADER_SIZE - this.headerFill, end - off)
      chunk.copy(h, this.headerFill, off, off + n)
      this.headerFill += n
      off += n
      if (this.headerFill < HEADER_SIZE) return
      this.headerFill = 0
      const type = h[0]!
      const msgId = (h[1]! << 8) | h[2]!
      const length = (h[3]! << 8) | h[4]!
      const size = this.start(type, msgId, length)
      if (size < 0) return
      if (size === 0) this.deliver(type, msgId, EMPTY, length)
      else this.body = Buffer.allocUnsafe(size)
    }
  }

  /**
   * Checks a complete header and returns the body size to read, or -1 (after reporting the
   * error) if the frame is refused.
   */
  private start(type: number, msgId: number, length: number): number {
    this.type = type
    this.msgId = msgId
    this.length = length
    if (this.side === 'device' && type === Cmd.RESPONSE) {
      if (this.expectLoginReply && length === 1) {
        this.expectLoginReply = false
        return 1
      }
      return 0 // [HT-2.7] the length field is a status, no body follows
    }
    if (length > this.maxBody) {
      this._failed = true
      this.pending = []
      this.pendingBytes = 0
      this.onError(new FrameTooLargeError(type, msgId, length, this.maxBody))
      return -1
    }
    return length
  }

  private deliver(type: number, msgId: number, body: Buffer, length: number): void {
    if (this.onFrame(type, msgId, body, length) === false) this._paused = true
  }
}
