/**
 * The uplink (and downlink) payload: `{"d":1000017,"s":1000001234,"t":1001234567890123}`.
 *
 * - `d`: device index + 1e6, `s`: sequence number + 1e9, `t`: send time in µs (see clock.ts) + 1e15.
 *   The offsets give every field a fixed width, so a generator copies a pre-encoded frame and
 *   patches digits in place (no JSON.stringify, no allocation per message), and the subscriber
 *   reads fields at fixed offsets (no JSON.parse). They are still plain JSON numbers.
 * - The text is already what the gateway's JSON.parse + JSON.stringify produce, so the bytes the
 *   subscriber sees are the bytes the device sent, through the gateway or directly.
 */

const D_BASE = 1_000_000
const S_BASE = 1_000_000_000
const T_BASE = 1_000_000_000_000_000

const HEAD = '{"d":'
const D_DIGITS = 7
const S_DIGITS = 10
const T_DIGITS = 16

/** Offsets of each field's first digit. */
const D_OFF = HEAD.length
const S_OFF = D_OFF + D_DIGITS + ',"s":'.length
const T_OFF = S_OFF + S_DIGITS + ',"t":'.length

/** Bytes of one payload. */
export const PAYLOAD_LEN = T_OFF + T_DIGITS + 1

/** Largest device index and sequence number the fixed widths hold. */
export const MAX_DEVICES = 8_999_999
export const MAX_SEQ = 8_999_999_999

/** The payload as a string (for templates, tests and the MQTT.js client). */
export function payloadText(device: number, seq: number, tUs: number): string {
  return `{"d":${D_BASE + device},"s":${S_BASE + seq},"t":${T_BASE + Math.floor(tUs)}}`
}

/** Writes `digits` decimal digits of `value` (a non-negative integer < 2^53) ending before `end`. */
function writeDigits(buf: Buffer, end: number, digits: number, value: number): void {
  let v = value
  for (let i = end - 1; i >= end - digits; i--) {
    const q = Math.floor(v / 10)
    buf[i] = 48 + (v - q * 10)
    v = q
  }
}

/** Writes a whole payload at `off`. */
export function writePayload(buf: Buffer, off: number, device: number, seq: number, tUs: number): void {
  buf.write(payloadText(device, seq, tUs), off, 'latin1')
}

/** Patches the sequence number and send time of a payload already at `off`. */
export function patchPayload(buf: Buffer, off: number, seq: number, tUs: number): void {
  writeDigits(buf, off + S_OFF + S_DIGITS, S_DIGITS, S_BASE + seq)
  writeDigits(buf, off + T_OFF + T_DIGITS, T_DIGITS, T_BASE + Math.floor(tUs))
}

function readDigits(buf: Buffer, start: number, digits: number): number {
  let v = 0
  for (let i = start; i < start + digits; i++) {
    const c = buf[i]! - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/** A parsed payload; reused by the caller (no allocation per message). */
export interface PayloadFields {
  device: number
  seq: number
  tUs: number
}

/**
 * Reads the payload of `len` bytes at `off` into `out`. Returns false if it is not in the exact
 * layout above (then the caller counts it as malformed).
 */
export function readPayload(buf: Buffer, off: number, len: number, out: PayloadFields): boolean {
  if (len !== PAYLOAD_LEN || buf[off] !== 0x7b || buf[off + len - 1] !== 0x7d) return false
  const d = readDigits(buf, off + D_OFF, D_DIGITS)
  const s = readDigits(buf, off + S_OFF, S_DIGITS)
  const t = readDigits(buf, off + T_OFF, T_DIGITS)
  if (d < D_BASE || s < S_BASE || t < T_BASE) return false
  out.device = d - D_BASE
  out.seq = s - S_BASE
  out.tUs = t - T_BASE
  return true
}
