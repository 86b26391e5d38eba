import { isUtf8 } from 'node:buffer'
import { skipSpace } from './envelope.js'

/**
 * JSON bodies of HyperTCP frames: parsing and validation of what devices send, and the exact
 * shapes of what the gateway sends them. Pure: no I/O.
 */

/** A parsed LOGIN body ([HT-2.1] raw token or [HT-2.2] JSON form). */
export interface LoginRequest {
  /** The token: raw body bytes, or the JSON form's `token` string. */
  readonly token: Buffer | string
  /** The JSON form's `device_id`, when present. */
  readonly deviceId: string | undefined
  /** Why the JSON form is refused (a `device_id` that is not a string), when it is. */
  readonly invalid?: string
}

const OPEN_BRACE = 0x7b

/**
 * [HT-2.2] A body that parses as a JSON object with a string `token` is the JSON form; anything
 * else is a raw token (unchanged devices send the token bytes as they are, [HT-2.1]).
 * A raw token is returned as a view of `body`: copy it to keep it past the call.
 */
export function parseLogin(body: Buffer): LoginRequest {
  const json = body[skipSpace(body, 0)] === OPEN_BRACE ? parseJsonObject(body) : undefined
  if (json !== undefined && typeof json.token === 'string') {
    const id = json.device_id
    if (id !== undefined && typeof id !== 'string')
      return { token: json.token, deviceId: undefined, invalid: 'device_id is not a string' }
    return { token: json.token, deviceId: id }
  }
  return { token: body, deviceId: undefined }
}

// The device's message envelope is read by envelope.ts (a byte-level scanner on the hot path).

/** [HT-3.5] `{"command": "ping", ...}` addressed to `server` is answered in-band. */
export function isJsonPing(payload: unknown): payload is Record<string, unknown> {
  return isPlainObject(payload) && payload.command === 'ping'
}

/** [HT-3.5] The pong body: the ping's other fields echoed, `command` set to `pong`. */
export function pongBody(ping: Record<string, unknown>): string {
  return JSON.stringify({ from: 'server', payload: { ...ping, command: 'pong' } })
}

/** `{"from":"<id>","payload":` — the start of every envelope a device sends on ([HT-2.6]). */
export function envelopePrefix(from: string): string {
  return `{"from":${JSON.stringify(from)},"payload":`
}

/** [HT-2.8] The REDIRECT body unchanged devices read. */
export function redirectBody(server: string, port: number): string {
  return JSON.stringify({ server, port })
}

/** A message from MQTT made ready for a device, or why it cannot be delivered. */
export type Downlink =
  | {
      readonly ok: true
      readonly from: string
      readonly body: Buffer | string
      /** A `from` naming someone other than `server` was not believed: it now reads `server`. */
      readonly replaced?: true
      /** The parsed payload (to count its members against a device's limit). */
      readonly payload: unknown
    }
  | { readonly ok: false; readonly reason: string }

/**
 * [HT-5.2] Turns an MQTT message on a down (or broadcast) topic into the JSON body of the frame
 * sent to the device. A JSON object with a `payload` key and a string (or absent) `from` is an
 * envelope: delivered as-is (verbatim bytes), `"from": "server"` added when absent. Any other
 * JSON value is the payload of a `{"from": "server"}` envelope. Not UTF-8 JSON: refused.
 * Unless `trustFrom`, an envelope's `from` other than `server` is replaced by `server` (nobody
 * but a gateway may speak for a device). The size limit is the caller's to apply, on the body.
 */
export function parseDownlink(message: Buffer, trustFrom = true): Downlink {
  if (message.length === 0) return { ok: false, reason: 'empty message' }
  if (!isUtf8(message)) return { ok: false, reason: 'message is not valid UTF-8' }
  const text = message.toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, reason: 'message is not JSON' }
  }
  if (isPlainObject(value) && 'payload' in value) {
    const payload = value.payload
    if (typeof value.from === 'string') {
      if (trustFrom || value.from === 'server') return { ok: true, from: value.from, body: message, payload }
      const body = JSON.stringify({ ...value, from: 'server' })
      return { ok: true, from: 'server', body, payload, replaced: true }
    }
    if (value.from === undefined) {
      // Keep the sender's bytes; only the `from` member is new.
      const brace = text.indexOf('{')
      return { ok: true, from: 'server', body: `{"from":"server",${text.slice(brace + 1)}`, payload }
    }
  }
  return { ok: true, from: 'server', body: `{"from":"server","payload":${text.trim()}}`, payload: value }
}

/**
 * Object members and array elements of a parsed JSON value, at every depth — the slots an
 * ArduinoJson 6 document spends on it. Counting stops past `limit` (the answer is then some
 * number above it). Iterative: a deeply nested value cannot exhaust the stack.
 */
export function countMembers(value: unknown, limit = Number.POSITIVE_INFINITY): number {
  let count = 0
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const v = pending.pop()
    if (v === null || typeof v !== 'object') continue
    const children = Array.isArray(v) ? v : Object.values(v)
    count += children.length
    if (count > limit) return count
    for (const child of children) if (child !== null && typeof child === 'object') pending.push(child)
  }
  return count
}

/** A ctl-topic command ([HT-5.5]). */
export type Control =
  | { readonly action: 'kick' }
  | { readonly action: 'redirect'; readonly server: string; readonly port: number }
  | { readonly action: 'takeover'; readonly gateway: string; readonly session: string; readonly at: number }
  | { readonly action: 'invalid'; readonly reason: string }

export function parseControl(message: Buffer): Control {
  const value = isUtf8(message) ? parseJsonObject(message) : undefined
  if (value === undefined) return { action: 'invalid', reason: 'not a JSON object' }
  switch (value.action) {
    case 'kick':
      return { action: 'kick' }
    case 'redirect': {
      const { server, port } = value
      if (typeof server !== 'string' || server.length === 0 || server.length > 255) {
        return { action: 'invalid', reason: 'redirect needs a "server" host name' }
      }
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
        return { action: 'invalid', reason: 'redirect needs a "port" from 1 to 65535' }
      }
      return { action: 'redirect', server, port }
    }
    case 'takeover': {
      // Sent by another gateway instance when the device logs in there ([HT-3.3]).
      const { gateway, session, at } = value
      if (typeof gateway !== 'string' || typeof session !== 'string' || typeof at !== 'number') {
        return { action: 'invalid', reason: 'takeover needs "gateway", "session" and "at"' }
      }
      return { action: 'takeover', gateway, session, at }
    }
    default:
      return { action: 'invalid', reason: `unknown action ${JSON.stringify(value.action)}` }
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The JSON object `body` holds, or undefined (not UTF-8 JSON, or not an object). */
export function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'))
    return isPlainObject(value) ? value : undefined
  } catch {
    return undefined
  }
}

/**
 * The payload of a message for a device: `payload` when the caller parsed it already, else read
 * again from `body`, its envelope (a message kept in the store comes back as its envelope only).
 */
export function payloadOf(body: Buffer | string, payload: unknown): unknown {
  if (payload !== undefined) return payload
  return parseJsonObject(typeof body === 'string' ? Buffer.from(body) : body)?.payload
}
