import { isUtf8 } from 'node:buffer'
import { isPlainObject } from '../../protocol/messages.js'
import type { DeviceInfo } from '../../session/dialect.js'

/**
 * Blynk bodies: `\0`-separated text fields (BlynkParam). What devices send becomes the JSON
 * published on their up topic; the JSON of their down topic becomes `vw`/`dw`/`aw` writes. Pure.
 */

/** The fields of a body, or undefined when it is not UTF-8 text. A trailing `\0` ends the last. */
export function fields(body: Buffer): string[] | undefined {
  if (body.length === 0) return []
  if (!isUtf8(body)) return undefined
  const end = body[body.length - 1] === 0 ? body.length - 1 : body.length
  return body.toString('utf8', 0, end).split('\0')
}

const PIN_NUMBER = /^\d{1,3}$/
const KINDS: Record<string, string> = { v: 'V', d: 'D', a: 'A' }

/** `V0`, `D13`, `A0`: the pin a `vw`/`dw`/`aw` (or read) command names, or undefined. */
function pinName(command: string, pin: string | undefined): string | undefined {
  const kind = KINDS[command[0]!]
  return kind !== undefined && pin !== undefined && PIN_NUMBER.test(pin) ? `${kind}${Number(pin)}` : undefined
}

/** What a device's frame publishes: the JSON text, nothing (`null`), or why it is refused. */
export type Uplink =
  | { readonly ok: true; readonly json: string | null }
  | { readonly ok: false; readonly status: 'body' | 'command' }

const NOTHING: Uplink = { ok: true, json: null }
const BAD_BODY: Uplink = { ok: false, status: 'body' }
const BAD_COMMAND: Uplink = { ok: false, status: 'command' }

/**
 * HARDWARE: `vw`/`dw`/`aw` writes → `{"pin": "V0", "value": "12"}` (several values: an array);
 * `vr`/`dr`/`ar` reads → `{"pin": "V1", "read": true}`; `pm` (pin modes) publishes nothing.
 */
export function hardwareUplink(f: readonly string[]): Uplink {
  const command = f[0]
  if (command === 'pm') return NOTHING
  if (command === 'vw' || command === 'dw' || command === 'aw') {
    const pin = pinName(command, f[1])
    if (pin === undefined || f.length < 3) return BAD_BODY
    const value = f.length === 3 ? f[2] : f.slice(2)
    return { ok: true, json: JSON.stringify({ pin, value }) }
  }
  if (command === 'vr' || command === 'dr' || command === 'ar') {
    const pin = pinName(command, f[1])
    return pin === undefined || f.length !== 2
      ? BAD_BODY
      : { ok: true, json: JSON.stringify({ pin, read: true }) }
  }
  return BAD_COMMAND
}

/** HARDWARE_SYNC (`Blynk.syncVirtual`, `syncAll`): `{"read": true}` and the pins, if it names any. */
export function syncUplink(f: readonly string[]): Uplink {
  if (f.length === 0) return { ok: true, json: '{"read":true}' }
  const pins: string[] = []
  for (let i = 1; i < f.length; i++) {
    const pin = pinName(f[0]!, f[i])
    if (pin === undefined) return BAD_BODY
    pins.push(pin)
  }
  if (pins.length === 0 || !f[0]!.endsWith('r')) return BAD_BODY
  return { ok: true, json: JSON.stringify({ pin: pins.length === 1 ? pins[0] : pins, read: true }) }
}

/** PROPERTY (`Blynk.setProperty(V1, "label", "x")`): `{"pin": "V1", "property": "label", "value": "x"}`. */
export function propertyUplink(f: readonly string[]): Uplink {
  const pin = pinName('v', f[0])
  if (pin === undefined || f.length < 3 || f[1] === '') return BAD_BODY
  const value = f.length === 3 ? f[2] : f.slice(2)
  return { ok: true, json: JSON.stringify({ pin, property: f[1], value }) }
}

/** EVENT_LOG (`Blynk.logEvent("name", "text")`): `{"event": "name", "description": "text"}`. */
export function eventUplink(f: readonly string[]): Uplink {
  if (f.length === 0 || f[0] === '') return BAD_BODY
  return {
    ok: true,
    json: JSON.stringify(f.length > 1 ? { event: f[0], description: f[1] } : { event: f[0] }),
  }
}

/** Keys a device's INTERNAL info may have (the Blynk library's sendInfo, across its boards). */
const INFO_KEYS = new Set([
  'ver',
  'blynk',
  'mcu',
  'ncp',
  'fw',
  'fw-type',
  'build',
  'h-beat',
  'buff-in',
  'dev',
  'cpu',
  'con',
  'conn',
  'tmpl',
  'tmpl-name',
  'type',
])
const MAX_INFO_VALUE = 64

/**
 * INTERNAL info (`ver`, `h-beat`, `buff-in`, `dev`…, as key/value fields), or undefined for any
 * other INTERNAL command. Unknown keys are left out and values cut to 64 characters; `ver` is the
 * `blynk` version when the device gives no `ver`. `h-beat` (1–3600 s) becomes its keepalive,
 * `buff-in` (at least 16) its downlink limit.
 */
export function parseInfo(f: readonly string[]): DeviceInfo | undefined {
  if (f.length < 2 || !INFO_KEYS.has(f[0]!)) return undefined
  const info: Record<string, string> = {}
  for (let i = 0; i + 1 < f.length; i += 2) {
    if (INFO_KEYS.has(f[i]!)) info[f[i]!] = f[i + 1]!.slice(0, MAX_INFO_VALUE)
  }
  if (info.ver === undefined && info.blynk !== undefined) info.ver = info.blynk
  const hbeat = integer(info['h-beat'], 1, 3600)
  const buffIn = integer(info['buff-in'], 16, 0xffff)
  return {
    info,
    ...(hbeat !== undefined ? { keepaliveMs: hbeat * 1000 } : {}),
    ...(buffIn !== undefined ? { maxDownlinkSize: buffIn } : {}),
  }
}

function integer(text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined
  const n = Number(text)
  return n >= min && n <= max ? n : undefined
}

/** Most pin writes one down-topic message may carry. */
const MAX_WRITES = 64
const WRITE_PIN = /^([VvDdAa])(\d{1,3})$/

/**
 * A down-topic payload as HARDWARE bodies: `{"pin": "V1", "value": "hello"}` → `vw\01\0hello`
 * (`D`/`A` pins: `dw`/`aw`; a number is a virtual pin; an array value: several fields), or an array
 * of such. Anything else: the reason it cannot be sent.
 */
export function pinWrites(payload: unknown): { ok: true; bodies: string[] } | { ok: false; reason: string } {
  const writes = Array.isArray(payload) ? payload : [payload]
  if (writes.length === 0 || writes.length > MAX_WRITES)
    return { ok: false, reason: `not 1 to ${MAX_WRITES} pin writes` }
  const bodies: string[] = []
  for (const write of writes) {
    if (!isPlainObject(write) || !('value' in write)) return { ok: false, reason: 'not {"pin", "value"}' }
    const pin = write.pin
    let command: string
    let number: number
    if (typeof pin === 'number' && Number.isInteger(pin) && pin >= 0 && pin <= 255) {
      command = 'vw'
      number = pin
    } else {
      const m = typeof pin === 'string' ? WRITE_PIN.exec(pin) : null
      if (m === null || Number(m[2]) > 255)
        return { ok: false, reason: 'pin is not V0–V255, D0–D255 or A0–A255' }
      command = `${m[1]!.toLowerCase()}w`
      number = Number(m[2])
    }
    const values = Array.isArray(write.value) ? write.value : [write.value]
    const texts: string[] = []
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        return { ok: false, reason: 'value is not a string, number, boolean or an array of them' }
      const text = typeof v === 'boolean' ? (v ? '1' : '0') : String(v)
      if (text.includes('\0')) return { ok: false, reason: 'value holds a NUL character' }
      texts.push(text)
    }
    if (texts.length === 0) return { ok: false, reason: 'value is an empty array' }
    bodies.push(`${command}\0${number}\0${texts.join('\0')}`)
  }
  return { ok: true, bodies }
}
