import { isUtf8 } from 'node:buffer'

/**
 * The device's message envelope `{"targetId": ..., "payload": ...}` ([HT-2.4], [HT-4.1]), read
 * straight from the frame's bytes: one pass validates the whole body as JSON (RFC 8259) and notes
 * where the top-level `targetId` and `payload` values are. Nothing is built for the payload — the
 * gateway forwards the device's own bytes ([HT-5.1]) — so no object tree, no whole-body string.
 *
 * It accepts and refuses exactly what `JSON.parse` does (test/unit/envelope.test.ts checks that
 * against JSON.parse on generated and mutated bodies), and, like JSON.parse, the last of duplicate
 * members wins. Longer than 300 lines: one validating pass over every JSON form, each a small
 * scanner. Pure: no I/O; its scanning state (a stack of container kinds, grown when needed)
 * lives in an {@link EnvelopeScanner}, one per caller that wants its own.
 */

/** A device's envelope, or why it is refused. */
export type Envelope =
  | {
      readonly ok: true
      readonly targetId: string
      /** The payload's JSON text, exactly as the device wrote it. */
      readonly payloadJson: string
      /**
       * Whether the payload could be the in-band JSON ping ([HT-3.5]): an object with a top-level
       * key that reads `command` or is written with escapes. Only then is it worth parsing.
       */
      readonly mayBePing: boolean
    }
  | { readonly ok: false; readonly reason: string }

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

const IN_OBJECT = 1
const IN_ARRAY = 2

// Words the scanner looks for, as bytes.
const TARGET_ID = Buffer.from('targetId')
const PAYLOAD = Buffer.from('payload')
const COMMAND = Buffer.from('command')
const SERVER = Buffer.from('server')

const EMPTY: Envelope = { ok: false, reason: 'empty body' }
const NOT_UTF8: Envelope = { ok: false, reason: 'body is not valid UTF-8' }
const NOT_JSON: Envelope = { ok: false, reason: 'body is not JSON' }
const NOT_OBJECT: Envelope = { ok: false, reason: 'body is not a JSON object' }
const NO_TARGET: Envelope = { ok: false, reason: 'targetId is missing or not a string' }
const NO_PAYLOAD: Envelope = { ok: false, reason: 'payload is missing' }

// Which top-level member a value belongs to.
const OTHER = 0
const TARGET = 1
const PAYLOAD_MEMBER = 2

/**
 * The scanner's state between its steps: reused from one body to the next, so that parsing costs no
 * allocation beyond the result.
 */
export class EnvelopeScanner {
  /** Kinds of the open containers, outermost first. */
  private stack = new Uint8Array(64)
  /** Whether the last string scanned had escapes (scalars and closed containers reset it). */
  private escaped = false
  /** Where the last key's text starts (past its quote), for memberOf. */
  private keyStart = 0

  /** [HT-4.1] The body must be UTF-8 JSON, an object with a string `targetId` and a `payload`. */
  parse(body: Buffer): Envelope {
    const n = body.length
    if (n === 0) return EMPTY
    if (!isUtf8(body)) return NOT_UTF8

    let depth = 0
    let member = OTHER // the top-level member whose value is being scanned
    let memberStart = 0
    // The last top-level `targetId` and `payload` values: [start, end), -1 when absent.
    let targetStart = -1
    let targetEnd = -1
    let targetEscaped = false
    let payloadStart = -1
    let payloadEnd = -1
    // Whether the payload member being scanned (an object) has a key `command` or one with escapes.
    let commandSeen = false
    let payloadMayBePing = false
    let i = skipSpace(body, 0)
    const topIsObject = body[i] === OPEN_BRACE

    // Set when a member of an object comes next: its key is read before its value.
    let keyNext = false

    // One value per turn of this loop; containers push, their ends pop.
    value: for (;;) {
      if (keyNext) {
        keyNext = false
        i = this.scanKey(body, i)
        if (i < 0) return NOT_JSON
        if (depth === 1) {
          member = this.memberOf(body, i)
          if (member === PAYLOAD_MEMBER) commandSeen = false
        } else if (depth === 2 && member === PAYLOAD_MEMBER && this.isCommandKey(body, i)) commandSeen = true
        i = skipColon(body, i)
        if (i < 0) return NOT_JSON
      }
      if (depth === 1 && topIsObject) memberStart = i
      const c = body[i]
      if (c === QUOTE) {
        i = this.scanString(body, i)
      } else if (c === OPEN_BRACE) {
        i = skipSpace(body, i + 1)
        if (body[i] === CLOSE_BRACE) {
          i++
        } else {
          this.push(depth++, IN_OBJECT)
          keyNext = true
          continue
        }
      } else if (c === OPEN_BRACKET) {
        i = skipSpace(body, i + 1)
        if (body[i] === CLOSE_BRACKET) {
          i++
        } else {
          this.push(depth++, IN_ARRAY)
          continue
        }
      } else {
        i = this.scanScalar(body, i, c)
      }
      if (i < 0) return NOT_JSON

      // A value ended at i: close what it ends, then expect ',' or the end.
      for (;;) {
        if (depth === 1 && topIsObject) {
          if (member === TARGET) {
            targetStart = memberStart
            targetEnd = i
            targetEscaped = this.escaped
          } else if (member === PAYLOAD_MEMBER) {
            payloadStart = memberStart
            payloadEnd = i
            payloadMayBePing = commandSeen && body[memberStart] === OPEN_BRACE
          }
          member = OTHER
        }
        i = skipSpace(body, i)
        if (depth === 0) {
          if (i !== n) return NOT_JSON
          break value
        }
        const kind = this.stack[depth - 1]
        const c2 = body[i]
        if (c2 === COMMA) {
          i = skipSpace(body, i + 1)
          keyNext = kind === IN_OBJECT
          continue value
        }
        if (c2 !== (kind === IN_OBJECT ? CLOSE_BRACE : CLOSE_BRACKET)) return NOT_JSON
        i++
        depth--
        this.escaped = false // a container is not a string with escapes
      }
    }

    if (!topIsObject) return NOT_OBJECT
    if (targetStart < 0 || body[targetStart] !== QUOTE) return NO_TARGET
    if (payloadStart < 0) return NO_PAYLOAD
    let targetId: string
    if (targetEscaped) targetId = JSON.parse(body.toString('utf8', targetStart, targetEnd)) as string
    else if (isWord(body, targetStart + 1, targetEnd - 1, SERVER))
      targetId = 'server' // the usual one
    else targetId = body.toString('utf8', targetStart + 1, targetEnd - 1)
    return {
      ok: true,
      targetId,
      payloadJson: body.toString('utf8', payloadStart, payloadEnd),
      mayBePing: payloadMayBePing,
    }
  }

  private push(depth: number, kind: number): void {
    if (depth === this.stack.length) {
      const grown = new Uint8Array(this.stack.length * 2)
      grown.set(this.stack)
      this.stack = grown
    }
    this.stack[depth] = kind
  }

  /** A member name at `i` (must be a string): the index past it, or -1. */
  private scanKey(body: Buffer, i: number): number {
    if (body[i] !== QUOTE) return -1
    this.keyStart = i + 1
    return this.scanString(body, i)
  }

  /** Which member the key just scanned (ending before `end`) names. */
  private memberOf(body: Buffer, end: number): number {
    const start = this.keyStart
    if (this.escaped) {
      // Escapes can spell any name: decode it (rare; JSON.parse is the reference).
      const name = JSON.parse(body.toString('utf8', start - 1, end)) as string
      return name === 'targetId' ? TARGET : name === 'payload' ? PAYLOAD_MEMBER : OTHER
    }
    if (isWord(body, start, end - 1, TARGET_ID)) return TARGET
    if (isWord(body, start, end - 1, PAYLOAD)) return PAYLOAD_MEMBER
    return OTHER
  }

  /** Whether the key just scanned (ending before `end`) could read `command`: it does, or has escapes. */
  private isCommandKey(body: Buffer, end: number): boolean {
    return this.escaped || isWord(body, this.keyStart, end - 1, COMMAND)
  }

  /** The string whose opening quote is at `i`: the index past its closing quote, or -1. Sets `escaped`. */
  private scanString(body: Buffer, i: number): number {
    this.escaped = false
    for (;;) {
      const c = body[++i]
      if (c === QUOTE) return i + 1
      if (c === undefined || c < 0x20) return -1 // unterminated, or a raw control character
      if (c === BACKSLASH) {
        this.escaped = true
        const e = body[++i]
        if (e === 0x75) {
          // \uXXXX
          if (!isHex(body[i + 1]) || !isHex(body[i + 2]) || !isHex(body[i + 3]) || !isHex(body[i + 4]))
            return -1
          i += 4
        } else if (
          e !== QUOTE &&
          e !== BACKSLASH &&
          e !== 0x2f && // '/'
          e !== 0x62 && // b
          e !== 0x66 && // f
          e !== 0x6e && // n
          e !== 0x72 && // r
          e !== 0x74 // t
        ) {
          return -1
        }
      }
    }
  }

  /** A number, true, false or null starting at `i` (first byte `c`): the index past it, or -1. */
  private scanScalar(body: Buffer, i: number, c: number | undefined): number {
    this.escaped = false
    if (c === 0x74) return literal(body, i, 0x72, 0x75, 0x65, -1) // true
    if (c === 0x66) return literal(body, i, 0x61, 0x6c, 0x73, 0x65) // false
    if (c === 0x6e) return literal(body, i, 0x75, 0x6c, 0x6c, -1) // null
    return scanNumber(body, i)
  }
}

const shared = new EnvelopeScanner()

/** [HT-4.1] The body must be UTF-8 JSON, an object with a string `targetId` and a `payload`. */
export function parseEnvelope(body: Buffer): Envelope {
  return shared.parse(body)
}

/** Whether body[start, end) holds exactly `word`'s bytes. */
function isWord(body: Buffer, start: number, end: number, word: Buffer): boolean {
  if (end - start !== word.length) return false
  for (let k = 0; k < word.length; k++) if (body[start + k] !== word[k]) return false
  return true
}

/** Past the ':' after a member name (and the space after it), or -1. */
function skipColon(body: Buffer, i: number): number {
  i = skipSpace(body, i)
  if (body[i] !== COLON) return -1
  return skipSpace(body, i + 1)
}

/** Past the JSON whitespace (space, tab, LF, CR) at `i`. */
export function skipSpace(body: Buffer, i: number): number {
  for (let c = body[i]; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = body[++i]);
  return i
}

function isHex(c: number | undefined): boolean {
  return isDigit(c) || (c !== undefined && (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66)
}

function literal(body: Buffer, i: number, a: number, b: number, c: number, d: number): number {
  if (body[i + 1] !== a || body[i + 2] !== b || body[i + 3] !== c) return -1
  if (d < 0) return i + 4
  return body[i + 4] === d ? i + 5 : -1
}

/** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at `i`: the index past it, or -1. */
function scanNumber(body: Buffer, i: number): number {
  if (body[i] === MINUS) i++
  let c = body[i]
  if (c === ZERO) {
    c = body[++i]
  } else if (c !== undefined && c > ZERO && c <= NINE) {
    do c = body[++i]
    while (isDigit(c))
  } else {
    return -1
  }
  if (c === DOT) {
    if (!isDigit(body[++i])) return -1
    do c = body[++i]
    while (isDigit(c))
  }
  if (c === 0x65 || c === 0x45) {
    c = body[++i]
    if (c === PLUS || c === MINUS) c = body[++i]
    if (!isDigit(c)) return -1
    do c = body[++i]
    while (isDigit(c))
  }
  return i
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE
}
