import { createRequire } from 'node:module'
import type * as Zod from 'zod'
import { parseCidr } from '../limits/cidr.js'

// zod's ES module entry imports its ~60 locale modules at once, a file descriptor each, in
// parallel: a gateway started with a small open-files limit ran out of them before it ran at all
// (test/integration/faults.test.ts, EMFILE). Through require() they are read one after another.
const z: typeof Zod = createRequire(import.meta.url)('zod')

/**
 * The kinds of value a setting can hold: for each, the zod schema that checks it (its error message
 * says what was expected, as the gateway's messages always have: `expected a port number from 0 to
 * 65535, got "eighty"`), how its text is read from an environment variable or a flag, and how the
 * reference names its type. zod (4) was chosen over TypeBox for this: schemas are plain values that
 * carry their own messages and transforms (a comma-separated list becomes an array), and the output
 * types are inferred from them, so the configuration's type is written nowhere else.
 */
export interface Kind<T> {
  readonly schema: Zod.ZodType<T>
  /** Reads the value from the text of an environment variable or a flag (checked by `schema` after). */
  readonly fromText: (text: string) => unknown
}

const asIs = (text: string): unknown => text

/** A port from 0 to 65535 (0: any free port). */
export function port(): Kind<number> {
  const expected = 'a port number from 0 to 65535'
  return {
    schema: z.int({ error: expected }).min(0, { error: expected }).max(65535, { error: expected }),
    fromText: numeric,
  }
}

/** A port, or the literal `off` for a listener that can be disabled. */
export function portOrOff(): Kind<number | 'off'> {
  const expected = "a port number from 0 to 65535 or 'off'"
  const number = z.int({ error: expected }).min(0, { error: expected }).max(65535, { error: expected })
  return {
    schema: z.union([z.literal('off'), number], { error: expected }),
    fromText: (t) => (t === 'off' ? 'off' : numeric(t)),
  }
}

/** A whole number from `min` to `max`, or `auto`. */
export function integerOrAuto(min: number, max: number): Kind<number | 'auto'> {
  const expected = `an integer from ${min} to ${max} or 'auto'`
  const number = z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected })
  return {
    schema: z.union([z.literal('auto'), number], { error: expected }),
    fromText: (t) => (t === 'auto' ? 'auto' : numeric(t)),
  }
}

/** A whole number from `min` to `max` (a count, bytes, milliseconds). */
export function integer(min: number, max: number): Kind<number> {
  const expected = `an integer from ${min} to ${max}`
  return {
    schema: z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected }),
    fromText: numeric,
  }
}

/** A number from `min` to `max`, fractions allowed; `unit` names it in the message (seconds, a rate). */
export function decimal(min: number, max: number, unit: 'seconds' | 'number'): Kind<number> {
  const expected = `${unit === 'seconds' ? 'a number of seconds' : 'a number'} from ${min} to ${max}`
  return {
    schema: z.number({ error: expected }).min(min, { error: expected }).max(max, { error: expected }),
    fromText: numeric,
  }
}

export function boolean(): Kind<boolean> {
  return {
    schema: z.boolean({ error: 'true or false' }),
    fromText: (t) => (/^(true|1|yes|on)$/i.test(t) ? true : /^(false|0|no|off)$/i.test(t) ? false : t),
  }
}

/** One of `choices`; a number in a JSON file (`"mqttProtocolVersion": 5`) names the same choice as its text. */
export function choice<const C extends readonly [string, ...string[]]>(choices: C): Kind<C[number]> {
  const expected = `one of ${choices.join(', ')}`
  return {
    schema: z.preprocess(
      (v) => (typeof v === 'number' ? String(v) : v),
      z.enum(choices, { error: expected }),
    ),
    fromText: asIs,
  }
}

/** A non-empty string. */
export function text(): Kind<string> {
  return {
    schema: z.string({ error: 'a non-empty string' }).min(1, { error: 'a non-empty string' }),
    fromText: asIs,
  }
}

/** `host:port` (IPv6 hosts bracketed). */
export function hostPort(): Kind<string> {
  return {
    schema: z
      .string({ error: 'host:port' })
      .refine((v) => parseHostPort(v) !== undefined, { error: 'host:port' }),
    fromText: asIs,
  }
}

/**
 * A list of strings (comma-separated in text), each read by `read` (undefined: not one, and
 * `item` says what was expected) and stored as it returns.
 */
function listOf(item: string, list: string, read: (v: string) => string | undefined): Kind<string[]> {
  return {
    schema: z.preprocess(
      (v) => (typeof v === 'string' ? splitList(v) : v),
      z.array(
        z
          .string({ error: item })
          .refine((v) => read(v) !== undefined, { error: item })
          .transform((v) => read(v)!),
        { error: list },
      ),
    ),
    fromText: asIs,
  }
}

/** Web origins, `scheme://host[:port]` (comma-separated in text), kept as browsers send them. */
export function origins(): Kind<string[]> {
  return listOf(
    'an origin such as https://app.example or http://localhost:3000',
    'a list of origins such as ["https://app.example"]',
    originOf,
  )
}

/** The origin a browser would send for `value` (`https://App.example:443/` → `https://app.example`), if it is one. */
export function originOf(value: string): string | undefined {
  try {
    const u = new URL(value.trim())
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined
    if (u.pathname !== '/' || u.search !== '' || u.hash !== '' || u.username !== '') return undefined
    return u.origin
  } catch {
    return undefined
  }
}

/** A list of `host:port` (comma-separated in text). */
export function hostPorts(): Kind<string[]> {
  return listOf('host:port', 'a list of host:port such as ["gw2.example:8080"]', (v) =>
    parseHostPort(v) === undefined ? undefined : v.trim(),
  )
}

/** Networks: a list of addresses or CIDRs (comma-separated in text). */
export function cidrs(): Kind<string[]> {
  return listOf(
    'an address or CIDR such as 10.0.0.0/8 or 2001:db8::/32',
    'a list of networks such as ["10.0.0.0/8", "192.168.1.7"]',
    (c) => (parseCidr(c) === undefined ? undefined : c.trim()),
  )
}

/** One URL or several (comma-separated in text, a string or a list in a file), each of `protocols`. */
export function urls(protocols: readonly string[]): Kind<string[]> {
  const item = `a URL such as mqtt://host:1883 (${protocols.join(' ')})`
  return {
    schema: z.preprocess(
      (v) => (typeof v === 'string' ? splitList(v) : v),
      z
        .array(
          z.string({ error: item }).refine((u) => hasProtocol(u, protocols), { error: item }),
          { error: `${item}, or a list of them` },
        )
        .min(1, { error: `${item}, or a list of them` }),
    ),
    fromText: asIs,
  }
}

/** One URL with one of `protocols`. */
export function url(protocols: readonly string[]): Kind<string> {
  const expected = `a URL such as ${protocols[0]}//host:port/path (${protocols.join(' ')})`
  return {
    schema: z.string({ error: expected }).refine((u) => hasProtocol(u, protocols), { error: expected }),
    fromText: asIs,
  }
}

/** QoS 0, 1 or 2. */
export function qos(): Kind<0 | 1 | 2> {
  return {
    schema: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'QoS 0, 1 or 2' }),
    fromText: numeric,
  }
}

/** The same kind, or null (an empty text means null: "not set"). */
export function nullable<T>(kind: Kind<T>): Kind<T | null> {
  return { schema: kind.schema.nullable(), fromText: (t) => (t === '' ? null : kind.fromText(t)) }
}

/** `host:port` (IPv6 hosts bracketed). */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim())
  const port = Number(m?.[3])
  if (!m || port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2])!, port }
}

function numeric(text: string): unknown {
  const n = Number(text)
  return text === '' || Number.isNaN(n) ? text : n
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
}

function hasProtocol(value: string, protocols: readonly string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol)
  } catch {
    return false
  }
}
