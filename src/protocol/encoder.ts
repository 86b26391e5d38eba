import { Cmd, HEADER_SIZE } from './constants.js'

/** Writes a 5-byte header at `offset` ([HT-1.1], big-endian). */
export function writeHeader(buf: Buffer, offset: number, type: number, msgId: number, length: number): void {
  buf[offset] = type
  buf[offset + 1] = msgId >>> 8
  buf[offset + 2] = msgId & 0xff
  buf[offset + 3] = length >>> 8
  buf[offset + 4] = length & 0xff
}

/** A frame with a binary body. */
export function encodeFrame(type: number, msgId: number, body?: Uint8Array): Buffer {
  const length = body === undefined ? 0 : body.length
  const buf = Buffer.allocUnsafe(HEADER_SIZE + length)
  writeHeader(buf, 0, type, msgId, length)
  if (body !== undefined && length > 0) buf.set(body, HEADER_SIZE)
  return buf
}

/** A frame whose body is `text` as UTF-8, encoded straight into the frame (one allocation). */
export function encodeTextFrame(type: number, msgId: number, text: string): Buffer {
  const length = Buffer.byteLength(text)
  const buf = Buffer.allocUnsafe(HEADER_SIZE + length)
  writeHeader(buf, 0, type, msgId, length)
  buf.write(text, HEADER_SIZE)
  return buf
}

/**
 * A bodiless RESPONSE: `status` 0 is success, anything else is the error status carried in the
 * length field ([HT-2.7] — devices never read a RESPONSE body after login).
 */
export function encodeResponse(msgId: number, status: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE)
  writeHeader(buf, 0, Cmd.RESPONSE, msgId, status)
  return buf
}

/** The login reply: RESPONSE with length 1 and the status as its one body byte ([HT-2.1], [HT-3.2]). */
export function encodeLoginReply(msgId: number, status: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 1)
  writeHeader(buf, 0, Cmd.RESPONSE, msgId, 1)
  buf[HEADER_SIZE] = status
  return buf
}

/** Next id of a per-connection counter that starts at 1 and skips 0 on wrap ([HT-1.5]). */
export function nextMsgId(id: number): number {
  return id >= 0xffff ? 1 : id + 1
}
