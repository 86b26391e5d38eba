/**
 * The two settings that are lists of entries, file only: the device registry (`devices`) and the
 * custom command types (`customCommands`, [HT-5.6]). Their fields are declared in the tables below
 * (what the checks accept and the reference documents); their entries are checked here, with
 * messages that name the entry and the field. The topics that must not clash are checked here too.
 */
import type { DeviceEntry } from '../auth/registry.js'
import { ConfigError } from '../errors.js'
import { Cmd } from '../protocol/constants.js'
import { isValidTopicLevel } from '../protocol/ids.js'
import { compileTemplate, TemplateError } from '../protocol/topics.js'
import { bad, checkFields, isIntegerIn, isRecord } from './messages.js'
import type { TopicsConfig } from './settings.js'

/** The fields of a `devices` entry. */
export const DEVICE_FIELDS = {
  id: 'device id, the `%c` of topic templates (one topic level: no `/ + #` or NUL; not `server` or `broadcast`); required',
  token: 'the secret it logs in with (never logged); required, unique',
  username: 'the `%u` of topic templates; default: the id',
  allowedIds: 'further ids the JSON login form may claim with this token',
  allowTargets: 'devices it may message directly: ids, or prefixes ending in `*`; default: any',
  allowBroadcast: 'whether it may broadcast; default true',
  maxDownlinkSize:
    "largest frame body sent to it, bytes (16 to the gateway's maxDownlinkSize); a larger message is dropped, counted and logged; default: maxDownlinkSize",
  maxDownlinkMembers:
    'most members and elements a downlink payload may hold, counted at every depth (0 to 65535); a message with more is dropped, counted and logged; default: no limit. For the original header on ArduinoJson 6, see the README',
} as const

/** [HT-5.6] A command type the protocol does not define, carried raw between devices and MQTT. */
export interface CustomCommand {
  /** The frame's command type: 1–255 and not one HyperTCP defines. */
  type: number
  /** Where a frame of this type from a device is published, its body verbatim; null = not accepted. */
  up: string | null
  /** Subscribed for each logged-in device; each message is sent to it as a frame of this type; null = none. */
  down: string | null
}

/** The fields of a `customCommands` entry. */
export const CUSTOM_COMMAND_FIELDS = {
  type: "the frame's command type: 1–255, not one HyperTCP defines (0, 6, 29, 30, 41, 50); required",
  up: 'topic template (%c %u %g) a frame of this type from a device is published to, its body verbatim; absent or null: not taken from devices',
  down: 'topic template (%c %u) subscribed for each logged-in device; each message is sent to it as a frame of this type',
} as const

/** Device ids that mean something else as a `targetId` ([HT-2.4]). */
const RESERVED_IDS = new Set(['server', 'broadcast'])

export function checkDevices(key: string, value: unknown): DeviceEntry[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"id", "token"} entries', value)
  const ids = new Map<string, number>()
  const tokens = new Map<string, number>()
  return value.map((entry: unknown, i): DeviceEntry => {
    const at = `${key}[${i}]`
    if (!isRecord(entry)) throw bad(at, 'an object {"id": "...", "token": "..."}', entry)
    checkFields(at, entry, DEVICE_FIELDS, 'device')
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
    const { maxDownlinkSize, maxDownlinkMembers } = entry
    if (maxDownlinkSize !== undefined && !isIntegerIn(maxDownlinkSize, 16, 65_535))
      throw bad(`${at}.maxDownlinkSize`, 'a whole number of bytes from 16 to 65535', maxDownlinkSize)
    if (maxDownlinkMembers !== undefined && !isIntegerIn(maxDownlinkMembers, 0, 65_535))
      throw bad(`${at}.maxDownlinkMembers`, 'a whole number from 0 to 65535', maxDownlinkMembers)
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
      ...(maxDownlinkSize === undefined ? {} : { maxDownlinkSize: maxDownlinkSize as number }),
      ...(maxDownlinkMembers === undefined ? {} : { maxDownlinkMembers: maxDownlinkMembers as number }),
    }
  })
}

const DEFINED_TYPES = new Set<number>(Object.values(Cmd))

/** [HT-5.6] `[{"type": 77, "up": "…", "down": "…"}]`; the templates are checked with the others. */
export function checkCustomCommands(key: string, value: unknown): CustomCommand[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"type", "up", "down"} entries', value)
  const types = new Map<number, number>()
  return value.map((entry: unknown, i): CustomCommand => {
    const at = `${key}[${i}]`
    if (!isRecord(entry)) throw bad(at, 'an object {"type": 77, "up": "...", "down": "..."}', entry)
    checkFields(at, entry, CUSTOM_COMMAND_FIELDS, 'custom command')
    const type = entry.type
    if (!isIntegerIn(type, 1, 255)) throw bad(`${at}.type`, 'a command type from 1 to 255', type)
    if (DEFINED_TYPES.has(type)) {
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
export function checkCustomTopics(config: {
  topics: TopicsConfig
  customCommands: readonly CustomCommand[]
}): void {
  const taken = new Map<string, string>()
  for (const t of ['up', 'down', 'status', 'control', 'broadcast', 'peer', 'peerBroadcast'] as const) {
    const topic = config.topics[t]
    if (topic !== null) taken.set(topic, `topics.${t}`)
  }
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

/**
 * The peer topics (docs/PROTOCOL.md, decision 38) are one guarantee on two topics, and a topic of their own:
 * with one of them alone, or one that others may write, the gateway would still believe any `from`.
 */
export function checkPeerTopics(topics: TopicsConfig): void {
  if ((topics.peer === null) !== (topics.peerBroadcast === null))
    throw new ConfigError(
      topics.peer === null ? 'topics.peer' : 'topics.peerBroadcast',
      'topics.peer and topics.peerBroadcast go together: set both, or neither',
    )
  for (const name of ['peer', 'peerBroadcast'] as const) {
    const same = (['up', 'down', 'status', 'control', 'broadcast', 'gatewayStatus'] as const).find(
      (other) => topics[name] !== null && topics[other] === topics[name],
    )
    if (same !== undefined)
      throw new ConfigError(
        `topics.${name}`,
        `is topics.${same}: the peer topics must be topics of their own`,
      )
  }
}

export function checkId(key: string, value: unknown): string {
  if (typeof value !== 'string' || !isValidTopicLevel(value)) {
    throw bad(key, 'a non-empty id of at most 128 characters without / + # or NUL', value)
  }
  if (RESERVED_IDS.has(value)) throw new ConfigError(key, `"${value}" is reserved (it is a targetId keyword)`)
  return value
}
