/**
 * `dialOut` (file only): devices that are TCP servers (an ESP32 listening on a port, talked to
 * with telnet), which the gateway dials instead of waiting for them (PROTOCOL decision 36).
 */
import { ConfigError } from '../errors.js'
import { checkId } from './collections.js'
import { bad, checkFields, isIntegerIn, isRecord } from './messages.js'

export type DialOutFraming = 'lines' | 'raw' | 'hypertcp'

export interface DialOutEntry {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly framing: DialOutFraming
  /** `hypertcp`: the token the gateway logs in to the device with. */
  readonly token?: string
  /** The `%u` of topic templates; default: the id. */
  readonly username?: string
  /** Seconds a connection attempt may take. */
  readonly connectTimeout: number
}

/** A `dialOut` entry as given (library options): the defaults may be left out. */
export type DialOutInput = Omit<DialOutEntry, 'connectTimeout'> & { readonly connectTimeout?: number }

/** The fields of a `dialOut` entry. */
export const DIAL_OUT_FIELDS = {
  id: 'device id, the `%c` of its topics (as for `devices`; not an id of the registry); required',
  host: 'where the device listens: a host name or address; required',
  port: 'the port it listens on (1–65535); required',
  framing:
    '`lines` (text lines, `\\n` or `\\r\\n`: each published, as JSON when it is JSON, else as a JSON string), `raw` (bytes published as they arrive, in chunks of at most `maxFrameSize`) or `hypertcp` (the gateway is the HyperTCP client: it logs in with `token`); required',
  token: '`hypertcp` only, required there: the token the gateway logs in to the device with (never logged)',
  username: 'the `%u` of its topics; default: the id',
  connectTimeout: 'seconds a connection attempt may take (0.1 to 300); default 10',
} as const

const FRAMINGS: readonly DialOutFraming[] = ['lines', 'raw', 'hypertcp']

export function checkDialOut(key: string, value: unknown): DialOutEntry[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"id", "host", "port", "framing"} entries', value)
  const ids = new Map<string, number>()
  return value.map((entry: unknown, i): DialOutEntry => {
    const at = `${key}[${i}]`
    if (!isRecord(entry)) throw bad(at, 'an object {"id", "host", "port", "framing"}', entry)
    checkFields(at, entry, DIAL_OUT_FIELDS, 'dial-out')
    const id = checkId(`${at}.id`, entry.id)
    const dup = ids.get(id)
    if (dup !== undefined) throw new ConfigError(`${at}.id`, `"${id}" is already ${key}[${dup}]`)
    ids.set(id, i)
    const { host, port, framing, token, username, connectTimeout } = entry
    if (typeof host !== 'string' || host.length === 0 || /\s/.test(host))
      throw bad(`${at}.host`, 'a host name or address', host)
    if (!isIntegerIn(port, 1, 65535)) throw bad(`${at}.port`, 'a port number from 1 to 65535', port)
    if (!FRAMINGS.includes(framing as DialOutFraming))
      throw bad(`${at}.framing`, `one of ${FRAMINGS.map((f) => `"${f}"`).join(', ')}`, framing)
    if (framing === 'hypertcp' && (typeof token !== 'string' || token.length === 0))
      throw new ConfigError(`${at}.token`, 'framing "hypertcp": give the token to log in to the device with')
    if (framing !== 'hypertcp' && token !== undefined)
      throw new ConfigError(`${at}.token`, `must not be given: framing "${String(framing)}" has no login`)
    if (username !== undefined) checkId(`${at}.username`, username)
    if (
      connectTimeout !== undefined &&
      (typeof connectTimeout !== 'number' || !(connectTimeout >= 0.1 && connectTimeout <= 300))
    )
      throw bad(`${at}.connectTimeout`, 'seconds from 0.1 to 300', connectTimeout)
    return {
      id,
      host,
      port,
      framing: framing as DialOutFraming,
      ...(typeof token === 'string' ? { token } : {}),
      ...(username !== undefined ? { username: username as string } : {}),
      connectTimeout: (connectTimeout as number | undefined) ?? 10,
    }
  })
}

/** A dialed device is not also a device of the registry: one id, one way in. */
export function checkDialOutIds(config: {
  devices: readonly { id: string }[]
  dialOut: readonly DialOutEntry[]
}): void {
  const registry = new Set(config.devices.map((d) => d.id))
  config.dialOut.forEach((d, i) => {
    if (registry.has(d.id))
      throw new ConfigError(`dialOut[${i}].id`, `"${d.id}" is a device of the registry (devices) too`)
  })
}
