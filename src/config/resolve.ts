import type { DeviceEntry } from '../auth/registry.js'
import { ConfigError } from '../errors.js'
import { parseCidr } from '../limits/cidr.js'
import { Cmd } from '../protocol/constants.js'
import { isValidTopicLevel } from '../protocol/ids.js'
import { compileTemplate, type Placeholder, TemplateError } from '../protocol/topics.js'
import {
  type CustomCommand,
  defaults,
  type GatewayConfig,
  QOS_KEYS,
  type QosConfig,
  SETTINGS,
  type SettingSpec,
  TOPIC_KEYS,
  type TopicsConfig,
} from './schema.js'

/** A partial config as given in a file, by the API or by flags (same keys as {@link GatewayConfig}). */
export type ConfigInput = Partial<Omit<GatewayConfig, 'topics' | 'qos' | 'mqttUrl'>> & {
  /** One broker URL, several comma-separated, or a list. */
  mqttUrl?: string | readonly string[] | null
  topics?: Partial<TopicsConfig>
  qos?: Partial<QosConfig>
}

/** One source of settings, named in error messages ("config file gw.json", "environment", …). */
export interface ConfigLayer {
  readonly source: string
  readonly values: unknown
}

export const ENV_PREFIX = 'HYPERTCP_'

/** Device ids that mean something else as a `targetId` ([HT-2.4]). */
const RESERVED_IDS = new Set(['server', 'broadcast'])

const TEMPLATE_PLACEHOLDERS: Record<(typeof TOPIC_KEYS)[number], readonly Placeholder[]> = {
  up: ['c', 'u', 'g'],
  down: ['c', 'u'],
  status: ['c', 'u'],
  control: ['c', 'u'],
  broadcast: [],
  gatewayStatus: ['g'],
}

/**
 * Merges layers over the defaults, later layers winning (defaults < file < env < flags), and
 * validates everything. Throws {@link ConfigError} naming the source and the key.
 */
export function resolveConfig(layers: readonly ConfigLayer[]): GatewayConfig {
  const config = defaults()
  for (const layer of layers) apply(config, layer)
  checkTemplates(config)
  checkCustomTopics(config)
  checkCombinations(config)
  return config
}

/** Rules between settings; errors name the setting to change. */
function checkCombinations(c: GatewayConfig): void {
  if (c.port === 'off' && c.tlsPort === 'off')
    throw new ConfigError('port', "both 'port' and 'tlsPort' are off: no listener left")
  const tls = c.tlsPort !== 'off' || c.brokerTlsPort !== 'off'
  if (tls && c.tlsCert === null)
    throw new ConfigError('tlsCert', 'a TLS listener is on: give the certificate file')
  if (tls && c.tlsKey === null)
    throw new ConfigError('tlsKey', 'a TLS listener is on: give the private key file')
  if (c.tlsClientAuth !== 'none' && c.tlsCa === null) {
    throw new ConfigError(
      'tlsCa',
      `tlsClientAuth is '${c.tlsClientAuth}': give the CA that device certificates chain to`,
    )
  }
  if ((c.brokerUsername === null) !== (c.brokerPassword === null)) {
    throw new ConfigError(
      c.brokerUsername === null ? 'brokerUsername' : 'brokerPassword',
      'brokerUsername and brokerPassword go together',
    )
  }
}

/** `host:port` (IPv6 hosts bracketed). */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim())
  const port = Number(m?.[3])
  if (!m || port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2])!, port }
}

function apply(config: GatewayConfig, { source, values }: ConfigLayer): void {
  if (values === undefined || values === null) return
  if (!isRecord(values)) throw new ConfigError(source, 'expected a JSON object of settings')
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue
    const where = `${source}: ${key}`
    if (key === 'topics') config.topics = { ...config.topics, ...checkTopics(where, value) }
    else if (key === 'qos') config.qos = { ...config.qos, ...checkQos(where, value) }
    else if (key === 'devices') config.devices = checkDevices(where, value)
    else if (key === 'customCommands') config.customCommands = checkCustomCommands(where, value)
    else if (key === '$schema' || key === '//' || key === 'comment') continue
    else if (Object.hasOwn(SETTINGS, key)) {
      const spec = SETTINGS[key as keyof typeof SETTINGS]
      ;(config as unknown as Record<string, unknown>)[key] = checkSetting(where, spec, value)
    } else {
      throw new ConfigError(where, `unknown setting${suggest(key, Object.keys(SETTINGS))}`)
    }
  }
}

/** Checks one scalar against its spec; returns the value to store. */
export function checkSetting(key: string, spec: SettingSpec, value: unknown): unknown {
  if (value === null && spec.nullable) return null
  if (spec.off && value === 'off') return 'off'
  switch (spec.kind) {
    case 'string': {
      if (typeof value !== 'string' || value.length === 0) throw bad(key, 'a non-empty string', value)
      if (spec.protocols) checkUrl(key, value, spec.protocols)
      return value
    }
    case 'boolean':
      if (typeof value !== 'boolean') throw bad(key, 'true or false', value)
      return value
    case 'enum': {
      // A number in a JSON file (`"mqttProtocolVersion": 5`) names the same choice as its text.
      const text = typeof value === 'number' ? String(value) : value
      if (typeof text !== 'string' || !spec.choices?.includes(text)) {
        throw bad(key, `one of ${spec.choices?.join(', ')}`, value)
      }
      return text
    }
    case 'urls': {
      const list = typeof value === 'string' ? value.split(',').map((u) => u.trim()) : value
      if (!Array.isArray(list) || list.length === 0)
        throw bad(key, 'a URL such as mqtt://host:1883, or a list of them', value)
      return list.map((url: unknown, i) => {
        const at = list.length > 1 ? `${key}[${i}]` : key
        if (typeof url !== 'string' || url === '') throw bad(at, 'a URL such as mqtt://host:1883', url)
        checkUrl(at, url, spec.protocols ?? [])
        return url
      })
    }
    case 'port':
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) {
        throw bad(key, `a port number from 0 to 65535${spec.off ? " or 'off'" : ''}`, value)
      }
      return value
    case 'qos':
      if (value !== 0 && value !== 1 && value !== 2) throw bad(key, 'QoS 0, 1 or 2', value)
      return value
    case 'cidrs': {
      const list = typeof value === 'string' ? value.split(',').filter((x) => x.trim() !== '') : value
      if (!Array.isArray(list))
        throw bad(key, 'a list of networks such as ["10.0.0.0/8", "192.168.1.7"]', value)
      return list.map((cidr: unknown, i) => {
        if (typeof cidr !== 'string' || parseCidr(cidr) === undefined) {
          throw bad(`${key}[${i}]`, 'an address or CIDR such as 10.0.0.0/8 or 2001:db8::/32', cidr)
        }
        return cidr.trim()
      })
    }
    case 'hostport':
      if (typeof value !== 'string' || parseHostPort(value) === undefined) throw bad(key, 'host:port', value)
      return value
    case 'int':
    case 'seconds': {
      const min = spec.min ?? 0
      const max = spec.max ?? Number.MAX_SAFE_INTEGER
      const what = spec.kind === 'int' ? 'an integer' : 'a number of seconds'
      const ok = typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
      if (!ok || (spec.kind === 'int' && !Number.isInteger(value))) {
        throw bad(key, `${what} from ${min} to ${max}`, value)
      }
      return value
    }
  }
}

function checkUrl(key: string, value: string, protocols: readonly string[]): void {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw bad(key, `a URL such as mqtt://host:1883`, value)
  }
  if (!protocols.includes(url.protocol)) throw bad(key, `a URL with one of ${protocols.join(' ')}`, value)
}

function checkTopics(key: string, value: unknown): Partial<TopicsConfig> {
  if (!isRecord(value)) throw bad(key, `an object with keys ${TOPIC_KEYS.join(', ')}`, value)
  const out: Partial<TopicsConfig> = {}
  for (const [name, template] of Object.entries(value)) {
    if (!(TOPIC_KEYS as readonly string[]).includes(name)) {
      throw new ConfigError(`${key}.${name}`, `unknown topic${suggest(name, TOPIC_KEYS)}`)
    }
    if (typeof template !== 'string') throw bad(`${key}.${name}`, 'a topic template string', template)
    out[name as keyof TopicsConfig] = template
  }
  return out
}

function checkTemplates(config: GatewayConfig): void {
  for (const name of TOPIC_KEYS) {
    const key = `topics.${name}`
    const allowed = TEMPLATE_PLACEHOLDERS[name]
    try {
      const template = compileTemplate(config.topics[name], allowed)
      if (allowed.includes('c') && name !== 'up' && !template.uses.has('c')) {
        throw new TemplateError('must contain %c (one topic per device)')
      }
    } catch (err) {
      if (err instanceof TemplateError) throw new ConfigError(key, err.message)
      throw err
    }
  }
}

function checkQos(key: string, value: unknown): Partial<QosConfig> {
  if (!isRecord(value)) throw bad(key, `an object with keys ${QOS_KEYS.join(', ')}`, value)
  const out: Partial<QosConfig> = {}
  for (const [name, qos] of Object.entries(value)) {
    if (!(QOS_KEYS as readonly string[]).includes(name)) {
      throw new ConfigError(`${key}.${name}`, `unknown QoS setting${suggest(name, QOS_KEYS)}`)
    }
    out[name as keyof QosConfig] = checkSetting(`${key}.${name}`, { kind: 'qos', doc: '' }, qos) as 0 | 1 | 2
  }
  return out
}

function checkDevices(key: string, value: unknown): DeviceEntry[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"id", "token"} entries', value)
  const ids = new Map<string, number>()
  const tokens = new Map<string, number>()
  return value.map((entry: unknown, i): DeviceEntry => {
    const at = `${key}[${i}]`
    if (!isRecord(entry)) throw bad(at, 'an object {"id": "...", "token": "..."}', entry)
    const known = ['id', 'token', 'username', 'allowedIds', 'allowTargets', 'allowBroadcast']
    for (const k of Object.keys(entry)) {
      if (!known.includes(k))
        throw new ConfigError(`${at}.${k}`, `unknown device setting${suggest(k, known)}`)
    }
    const id = checkId(`${at}.id`, entry.id)
    const { token, username, allowedIds } = entry
    if (typeof token !== 'string' || token.length === 0)
      throw new ConfigError(`${at}.token`, 'expected a non-empty string')
    if (username !== undefined) checkId(`${at}.username`, username)
    if (allowedIds !== undefined && !Array.isArray(allowedIds))
      throw bad(`${at}.allowedIds`, 'an array of device ids', allowedIds)
    const extra = (allowedIds ?? []).map((x: unknown, j: number) => checkId(`${at}.allowedIds[${j}]`, x))
    const { allowTargets, allowBroadcast } = entry
    if (allowTargets !== undefined && !Array.isArray(allowTargets)) {
      throw bad(`${at}.allowTargets`, 'an array of device ids or prefixes ending in *', allowTargets)
    }
    const targets = (allowTargets ?? []).map((x: unknown, j: number) => {
      const key = `${at}.allowTargets[${j}]`
      if (x === '*') return x
      if (typeof x === 'string' && x.endsWith('*') && isValidTopicLevel(x.slice(0, -1) || 'x')) return x
      return checkId(key, x)
    })
    if (allowBroadcast !== undefined && typeof allowBroadcast !== 'boolean') {
      throw bad(`${at}.allowBroadcast`, 'true or false', allowBroadcast)
    }
    const dup = ids.get(id)
    if (dup !== undefined) throw new ConfigError(`${at}.id`, `"${id}" is already the id of ${key}[${dup}]`)
    const dupToken = tokens.get(token)
    if (dupToken !== undefined) throw new ConfigError(`${at}.token`, `same token as ${key}[${dupToken}]`)
    ids.set(id, i)
    tokens.set(token, i)
    return {
      id,
      token,
      ...(username === undefined ? {} : { username: username as string }),
      ...(extra.length === 0 ? {} : { allowedIds: extra }),
      ...(allowTargets === undefined ? {} : { allowTargets: targets }),
      ...(allowBroadcast === undefined ? {} : { allowBroadcast }),
    }
  })
}

const CUSTOM_KEYS = ['type', 'up', 'down']
const DEFINED_TYPES = new Set<number>(Object.values(Cmd))

/** [HT-5.6] `[{"type": 77, "up": "…", "down": "…"}]`; the templates are checked with the others. */
function checkCustomCommands(key: string, value: unknown): CustomCommand[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"type", "up", "down"} entries', value)
  const types = new Map<number, number>()
  return value.map((entry: unknown, i): CustomCommand => {
    const at = `${key}[${i}]`
    if (!isRecord(entry)) throw bad(at, 'an object {"type": 77, "up": "...", "down": "..."}', entry)
    for (const k of Object.keys(entry)) {
      if (!CUSTOM_KEYS.includes(k))
        throw new ConfigError(`${at}.${k}`, `unknown custom command setting${suggest(k, CUSTOM_KEYS)}`)
    }
    const type = entry.type
    if (!Number.isInteger(type) || (type as number) < 1 || (type as number) > 255)
      throw bad(`${at}.type`, 'a command type from 1 to 255', type)
    if (DEFINED_TYPES.has(type as number)) {
      throw new ConfigError(
        `${at}.type`,
        `must not be a command HyperTCP defines (${[...DEFINED_TYPES].join(', ')}), got ${String(type)}`,
      )
    }
    const dup = types.get(type as number)
    if (dup !== undefined)
      throw new ConfigError(`${at}.type`, `type ${String(type)} is already ${key}[${dup}]`)
    types.set(type as number, i)
    const topic = (name: 'up' | 'down'): string | null => {
      const t = entry[name]
      if (t === undefined || t === null) return null
      if (typeof t !== 'string') throw bad(`${at}.${name}`, 'a topic template string or null', t)
      return t
    }
    const up = topic('up')
    const down = topic('down')
    if (up === null && down === null) throw new ConfigError(at, 'give "up", "down" or both')
    return { type: type as number, up, down }
  })
}

/**
 * Custom topics are templates like the others; a down topic must be one per device, and may not be
 * a topic the gateway already subscribes or publishes on (a message must mean one thing).
 */
function checkCustomTopics(config: GatewayConfig): void {
  const taken = new Map<string, string>(
    (['up', 'down', 'status', 'control', 'broadcast'] as const).map((t) => [config.topics[t], `topics.${t}`]),
  )
  config.customCommands.forEach((c, i) => {
    const at = `customCommands[${i}]`
    for (const [name, template, allowed] of [
      ['up', c.up, ['c', 'u', 'g']],
      ['down', c.down, ['c', 'u']],
    ] as const) {
      if (template === null) continue
      try {
        const compiled = compileTemplate(template, allowed)
        if (name === 'down' && !compiled.uses.has('c'))
          throw new TemplateError('must contain %c (one topic per device)')
      } catch (err) {
        if (err instanceof TemplateError) throw new ConfigError(`${at}.${name}`, err.message)
        throw err
      }
    }
    if (c.down === null) return
    const clash = taken.get(c.down)
    if (clash !== undefined) throw new ConfigError(`${at}.down`, `must differ from ${clash}`)
    taken.set(c.down, `${at}.down`)
  })
}

function checkId(key: string, value: unknown): string {
  if (typeof value !== 'string' || !isValidTopicLevel(value)) {
    throw bad(key, 'a non-empty id of at most 128 characters without / + # or NUL', value)
  }
  if (RESERVED_IDS.has(value)) throw new ConfigError(key, `"${value}" is reserved (it is a targetId keyword)`)
  return value
}

/**
 * Reads `HYPERTCP_*` variables into a config layer (strings parsed per setting kind):
 * `HYPERTCP_MQTT_URL`, `HYPERTCP_PORT`, …, `HYPERTCP_TOPICS_UP`, `HYPERTCP_QOS_UP`.
 * Returns the variables it did not recognise, for a warning.
 */
export function envLayer(env: NodeJS.ProcessEnv): { layer: ConfigLayer; unknown: string[] } {
  const values: Record<string, unknown> = {}
  const unknown: string[] = []
  const topics: Record<string, string> = {}
  const qos: Record<string, unknown> = {}
  const byName = new Map<string, () => void>()
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const name = ENV_PREFIX + snake(key)
    byName.set(name, () => {
      values[key] = fromString(name, spec, env[name]!)
    })
  }
  for (const t of TOPIC_KEYS) {
    const name = `${ENV_PREFIX}TOPICS_${snake(t)}`
    byName.set(name, () => {
      topics[t] = env[name]!
    })
  }
  for (const q of QOS_KEYS) {
    const name = `${ENV_PREFIX}QOS_${snake(q)}`
    byName.set(name, () => {
      qos[q] = fromString(name, { kind: 'qos', doc: '' }, env[name]!)
    })
  }
  for (const name of Object.keys(env)) {
    if (!name.startsWith(ENV_PREFIX) || env[name] === undefined) continue
    const read = byName.get(name)
    if (read) read()
    else unknown.push(name)
  }
  if (Object.keys(topics).length > 0) values.topics = topics
  if (Object.keys(qos).length > 0) values.qos = qos
  return { layer: { source: 'environment', values }, unknown }
}

/** Parses a string (env var or flag) into the type a setting expects. */
export function fromString(key: string, spec: SettingSpec, raw: string): unknown {
  const text = raw.trim()
  if (spec.nullable && text === '') return null
  if (spec.off && text === 'off') return 'off'
  switch (spec.kind) {
    case 'string':
    case 'enum':
    case 'hostport':
    case 'urls':
    case 'cidrs': // comma-separated; checked by checkSetting
      return text
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(text)) return true
      if (/^(false|0|no|off)$/i.test(text)) return false
      throw bad(key, 'true or false', raw)
    default: {
      const n = Number(text)
      if (text === '' || Number.isNaN(n)) throw bad(key, 'a number', raw)
      return n
    }
  }
}

export function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()
}

function bad(key: string, expected: string, got: unknown): ConfigError {
  return new ConfigError(key, `expected ${expected}, got ${describe(got)}`)
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** ` (did you mean "port"?)` for a near miss, else ''. */
function suggest(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase()
  let best: string | undefined
  let bestScore = 3
  for (const k of known) {
    const d = distance(lower, k.toLowerCase())
    if (d < bestScore) {
      bestScore = d
      best = k
    }
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]!
}
