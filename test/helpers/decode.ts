import { type DecoderSide, FrameDecoder, type FrameTooLargeError } from '../../src/protocol/decoder.js'

export interface Decoded {
  type: number
  msgId: number
  length: number
  body: string // hex
}

/** Decodes `chunks` in order; returns every frame (bodies copied, as hex) and every error. */
export function decodeAll(
  chunks: readonly Buffer[],
  maxBody = 65535,
  side: DecoderSide = 'gateway',
  setup?: (d: FrameDecoder) => void,
): { frames: Decoded[]; errors: FrameTooLargeError[] } {
  const frames: Decoded[] = []
  const errors: FrameTooLargeError[] = []
  const decoder = new FrameDecoder(
    maxBody,
    (type, msgId, body, length) => {
      frames.push({ type, msgId, length, body: body.toString('hex') })
      return undefined
    },
    (err) => errors.push(err),
    side,
  )
  setup?.(decoder)
  for (const c of chunks) decoder.push(c)
  return { frames, errors }
}

/** Cuts `buf` at the given offsets. */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b)
  const out: Buffer[] = []
  let prev = 0
  for (const c of sorted) {
    out.push(buf.subarray(prev, c))
    prev = c
  }
  out.push(buf.subarray(prev))
  return out
}

export function byteByByte(buf: Buffer): Buffer[] {
  return [...buf].map((b) => Buffer.from([b]))
}
