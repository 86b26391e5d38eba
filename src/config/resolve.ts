import { ConfigError } from '../errors.js'
import { isAllowedId } from '../protocol/ids.js'
import { compileTemplate, TemplateError } from '../protocol/topics.js'
import type { BrokerUser } from './broker-users.js'
import { checkBrokerUsers, readBrokerUsersFile } from './broker-users.js'
import { checkCustomCommands, checkCustomTopics, checkDevices, checkPeerTopics } from './collections.js'
import { checkDialOut, checkDialOutIds, type DialOutInput } from './dial-out.js'
import { type Kind, nullable, text } from './kinds.js'
import { describe, isRecord, suggest } from './messages.js'
import {
  type GatewayConfig,
  QOS,
  type QosConfig,
  type ScalarConfig,
  SETTINGS,
  type Setting,
  type SettingKey,
  TOPICS,
  type TopicKey,
  type TopicsConfig,
} from './settings.js'

/** A partial config as given in a file, by the API or by flags (same keys as {@link GatewayConfig}). */
export type ConfigInput = Partial<Omit<GatewayConfig, 'topics' | 'qos' | 'mqttUrl' | 'dialOut'>> & {
  /** One broker URL, several comma-separated, or a list. */
  mqttUrl?: string | readonly string[] | null
  /** Devices to dial; `connectTimeout` may be left to its default. */
  dialOut?: readonly DialOutInput[]
  topics?: Partial<TopicsConfig>
  qos?: Partial<QosConfig>
}

/** One source of settings, named in error messages ("config file gw.json", "environment", …). */
export interface ConfigLayer {
  readonly source: string
  readonly values: unknown
  /** How the source names a setting, when not by its key (`HYPERTCP_PORT`, `--port`). */
  readonly names?: Readonly<Record<string, string>>
}

export const ENV_PREFIX = 'HYPERTCP_'

/** Keys a file may carry that are not settings (a schema reference, comments). */
const IGNORED = new Set(['$schema', '//', 'comment'])
const STRUCTURED = ['topics', 'qos', 'devices', 'customCommands', 'brokerUsers', 'dialOut']

/** The value of every setting when no source sets it. */
export function defaults(): GatewayConfig {
  const scalars = Object.fromEntries(
    Object.entries(SETTINGS).map(([key, s]: [string, Setting<unknown>]) => [key, defaultOf(s)]),
  ) as ScalarConfig
  return {
    ...scalars,
    topics: Object.fromEntries(Object.entries(TOPICS).map(([k, t]) => [k, t.default])) as TopicsConfig,
    qos: Object.fromEntries(Object.entries(QOS).map(([k, q]) => [k, q.default])) as QosConfig,
    devices: [],
    customCommands: [],
    brokerUsers: [],
    dialOut: [],
  }
}

function defaultOf<T>(s: Setting<T>): T {
  return typeof s.default === 'function' ? (s.default as () => T)() : s.default
}

/**
 * Merges layers over the defaults, later layers winning (defaults < file < env < flags), and
 * validates everything. Throws {@link ConfigError} naming the source and the key.
 */
export function resolveConfig(layers: readonly ConfigLayer[]): GatewayConfig {
  const config = defaults()
  for (const layer of layers) apply(config, layer)
  if (config.brokerUsersFile !== null) addBrokerUsers(config, readBrokerUsersFile(config.brokerUsersFile))
  if (config.brokerUsername !== null && config.brokerPassword !== null) {
    const legacy = {
      username: config.brokerUsername,
      password: config.brokerPassword,
      role: 'admin',
    } as const
    addBrokerUsers(config, [legacy], 'brokerUsername')
  }
  checkTemplates(config.topics)
  checkPeerTopics(config.topics)
  checkCustomTopics(config)
  checkDialOutIds(config)
  checkCombinations(config)
  return config
}

function apply(config: GatewayConfig, { source, values, names = {} }: ConfigLayer): void {
  if (values === undefined || values === null) return
  if (!isRecord(values)) throw new ConfigError(source, 'expected a JSON object of settings')
  const writable = config as unknown as Record<string, unknown>
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined || IGNORED.has(key)) continue
    const where = `${source}: ${names[key] ?? key}`
    if (key === 'topics')
      config.topics = { ...config.topics, ...checkGroup(where, value, TOPIC_KINDS, 'topic') }
    else if (key === 'qos')
      config.qos = { ...config.qos, ...checkGroup(where, value, QOS_KINDS, 'QoS setting') }
    else if (key === 'devices') config.devices = checkDevices(where, value)
    else if (key === 'customCommands') config.customCommands = checkCustomCommands(where, value)
    else if (key === 'brokerUsers') config.brokerUsers = checkBrokerUsers(where, value)
    else if (key === 'dialOut') config.dialOut = checkDialOut(where, value)
    else if (Object.hasOwn(SETTINGS, key))
      writable[key] = check(where, SETTINGS[key as SettingKey].kind, value)
    else {
      throw new ConfigError(
        where,
        `unknown setting${suggest(key, [...Object.keys(SETTINGS), ...STRUCTURED])}`,
      )
    }
  }
}

/** Checks a value against its kind; returns the value to store (lists are split, choices named). */
export function check(where: string, kind: Kind<unknown>, value: unknown): unknown {
  const result = kind.schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  let steps = issue.path
  // A list given as text (comma-separated) was split before the check: point into its items, and
  // name no index when there was only one.
  let got: unknown = value
  if (typeof value === 'string' && typeof steps[0] === 'number') {
    const items = value.split(',').map((x) => x.trim())
    got = items
    if (items.length === 1) {
      got = items[0]
      steps = steps.slice(1)
    }
  }
  for (const p of steps) got = (got as Record<PropertyKey, unknown> | undefined)?.[p as PropertyKey]
  const path = steps.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
  throw new ConfigError(`${where}${path}`, `expected ${issue.message}, got ${describe(got)}`)
}

const TOPIC_KINDS: Record<string, Kind<unknown>> = Object.fromEntries(
  Object.entries(TOPICS).map(([k, t]) => [k, t.default === null ? nullable(text()) : text()]),
)
const QOS_KINDS: Record<string, Kind<unknown>> = Object.fromEntries(
  Object.entries(QOS).map(([k, q]) => [k, q.kind as Kind<unknown>]),
)

/** `topics` or `qos`: an object of some of its keys, each checked by its kind. */
function checkGroup<T>(
  where: string,
  value: unknown,
  kinds: Record<string, Kind<unknown>>,
  what: string,
): Partial<T> {
  if (!isRecord(value)) {
    throw new ConfigError(
      where,
      `expected an object with keys ${Object.keys(kinds).join(', ')}, got ${describe(value)}`,
    )
  }
  const out: Record<string, unknown> = {}
  for (const [name, v] of Object.entries(value)) {
    const kind = kinds[name]
    if (kind === undefined)
      throw new ConfigError(`${where}.${name}`, `unknown ${what}${suggest(name, Object.keys(kinds))}`)
    out[name] = check(`${where}.${name}`, kind, v)
  }
  return out as Partial<T>
}

/**
 * Users from another source, after those of `brokerUsers`. A username given twice is an error,
 * unless both entries are the same (a resolved configuration resolved again: the gateway's API).
 */
function addBrokerUsers(config: GatewayConfig, users: BrokerUser[], source = 'brokerUsersFile'): void {
  const added: BrokerUser[] = []
  for (const user of users) {
    const known = config.brokerUsers.find((u) => u.username === user.username)
    if (known === undefined) added.push(user)
    else if (!sameUser(known, user))
      throw new ConfigError(source, `broker user "${user.username}" is given twice`)
  }
  config.brokerUsers = [...config.brokerUsers, ...added]
}

function sameUser(a: BrokerUser, b: BrokerUser): boolean {
  return a.role === b.role && a.password === b.password && a.passwordHash === b.passwordHash
}

/** Topic templates compile, with only their placeholders, and per-device ones use %c. */
function checkTemplates(topics: TopicsConfig): void {
  for (const [name, t] of Object.entries(TOPICS) as [TopicKey, (typeof TOPICS)[TopicKey]][]) {
    const key = `topics.${name}`
    const value = topics[name]
    if (value === null) continue // an optional topic, off
    try {
      const template = compileTemplate(value, t.placeholders)
      if (t.perDevice && !template.uses.has('c'))
        throw new TemplateError('must contain %c (one topic per device)')
    } catch (err) {
      if (err instanceof TemplateError) throw new ConfigError(key, err.message)
      throw err
    }
  }
}

/** Rules between settings; errors name the setting to change. */
function checkCombinations(c: GatewayConfig): void {
  const listening = [c.port, c.tlsPort, c.blynkPort, c.blynkTlsPort].some((p) => p !== 'off')
  if (!listening && c.dialOut.length === 0) {
    throw new ConfigError(
      'port',
      "'port', 'tlsPort', 'blynkPort' and 'blynkTlsPort' are all off and no device is dialed (dialOut): no listener left",
    )
  }
  const tls = c.tlsPort !== 'off' || c.blynkTlsPort !== 'off' || c.brokerTlsPort !== 'off'
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
  if (c.adminPort !== 'off' && c.adminToken === null && !isLoopback(c.adminHost)) {
    throw new ConfigError(
      'adminToken',
      `adminHost ${c.adminHost} is not a loopback address: set adminToken (HYPERTCP_ADMIN_TOKEN), ` +
        "or bind the admin listener to 127.0.0.1, or set adminPort to 'off'",
    )
  }
  if (c.mqttUrl === null && !isLoopback(c.brokerHost) && c.brokerUsers.length === 0) {
    // Mosquitto 2's "local only" default: no broker open to the network without an explicit choice.
    throw new ConfigError(
      'brokerHost',
      `the embedded broker would listen on ${c.brokerHost}, beyond this machine, with no broker users: ` +
        'anyone on the network could read every message and command devices; give it users ' +
        '(brokerUsers in the config file, or a file of them in brokerUsersFile / HYPERTCP_BROKER_USERS_FILE; ' +
        '`hypertcp-gateway --hash-password` makes password hashes), ' +
        'or keep brokerHost 127.0.0.1',
    )
  }
  c.devices.forEach((d, i) => {
    for (const id of [d.id, ...(d.allowedIds ?? [])]) {
      if (!isAllowedId(id, c.idCharset))
        throw new ConfigError(
          `devices[${i}]`,
          `id ${JSON.stringify(id)} has characters idCharset '${c.idCharset}' does not allow`,
        )
    }
  })
  if ((c.brokerUsername === null) !== (c.brokerPassword === null)) {
    throw new ConfigError(
      c.brokerUsername === null ? 'brokerUsername' : 'brokerPassword',
      'brokerUsername and brokerPassword go together',
    )
  }
}

/** The `HYPERTCP_*` variable of a setting (`mqttUrl` → `HYPERTCP_MQTT_URL`, `topics.up` → `HYPERTCP_TOPICS_UP`). */
export function envName(key: string, group?: 'topics' | 'qos'): string {
  return `${ENV_PREFIX}${group ? `${snake(group)}_` : ''}${snake(key)}`
}

/**
 * Reads `HYPERTCP_*` variables into a config layer, each text read by its setting's kind. Returns
 * the variables it did not recognise, for a warning.
 */
export function envLayer(env: NodeJS.ProcessEnv): { layer: ConfigLayer; unknown: string[] } {
  const values: Record<string, unknown> = {}
  const names: Record<string, string> = {}
  const topics: Record<string, unknown> = {}
  const qos: Record<string, unknown> = {}
  const readers = new Map<string, (text: string) => void>()
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const name = envName(key)
    readers.set(name, (t) => {
      values[key] = s.kind.fromText(t.trim())
      names[key] = name
    })
  }
  for (const [key, spec] of Object.entries(TOPICS))
    readers.set(
      envName(key, 'topics'),
      (t) => (topics[key] = spec.default === null ? t.trim() || null : t.trim()),
    )
  for (const [key, q] of Object.entries(QOS))
    readers.set(envName(key, 'qos'), (t) => (qos[key] = q.kind.fromText(t.trim())))
  const unknown: string[] = []
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || text === undefined) continue
    const read = readers.get(name)
    if (read) read(text)
    else unknown.push(name)
  }
  if (Object.keys(topics).length > 0) values.topics = topics
  if (Object.keys(qos).length > 0) values.qos = qos
  return { layer: { source: 'environment', values, names }, unknown }
}

export function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/** 127.0.0.0/8, ::1 and `localhost`: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}
