import type { CustomCommand } from '../config/collections.js'
import type { TopicsConfig } from '../config/settings.js'
import { compileTemplate } from '../protocol/topics.js'

/**
 * Who may do what on the embedded broker: each MQTT client has a role, each topic a class drawn
 * from the topic templates, and the tables below say which classes a role may read and write
 * (EMQX's authorization rules, per client and topic, fixed to what the gateway's topics mean).
 * Pure: no broker, no I/O.
 */

export const BROKER_ROLES = ['app', 'monitor', 'admin', 'gateway'] as const
export type BrokerRole = (typeof BROKER_ROLES)[number]

/** What a topic is to the gateway; `other` is every topic no template describes. */
export type TopicClass =
  | 'up'
  | 'down'
  | 'status'
  | 'control'
  | 'broadcast'
  | 'gatewayStatus'
  | 'peer'
  | 'peerBroadcast'
  | 'rawUp'
  | 'rawDown'
  | 'sys'
  | 'other'

const set = (...classes: TopicClass[]): ReadonlySet<TopicClass> => new Set(classes)
const EVERY = set(
  'up',
  'down',
  'status',
  'control',
  'broadcast',
  'gatewayStatus',
  'peer',
  'peerBroadcast',
  'rawUp',
  'rawDown',
  'sys',
  'other',
)
/** What an application may read: devices' messages and presence, broadcasts, the gateways' status. */
const APP_READ = set('up', 'status', 'broadcast', 'peerBroadcast', 'gatewayStatus', 'rawUp', 'other')

/** The classes each role may subscribe to and receive. */
export const READ: Readonly<Record<BrokerRole, ReadonlySet<TopicClass>>> = {
  app: APP_READ,
  monitor: set(...APP_READ, 'sys'),
  admin: EVERY,
  gateway: EVERY,
}

/**
 * The classes each role may publish to. Only gateways publish what devices said, their presence
 * and the gateways' status, and only they speak to each other on the peer topics; only admins
 * (and gateways) use the control topic.
 */
export const WRITE: Readonly<Record<BrokerRole, ReadonlySet<TopicClass>>> = {
  app: set('down', 'broadcast', 'rawDown', 'other'),
  monitor: set(),
  admin: set('down', 'broadcast', 'rawDown', 'control', 'other'),
  gateway: set(...[...EVERY].filter((c) => c !== 'sys')),
}

/** One level of a template: a literal, or a level holding a placeholder (matched by its regex). */
type Level = { readonly literal: string } | { readonly wild: RegExp }

interface Pattern {
  readonly cls: TopicClass
  /** The whole topic. */
  readonly topic: RegExp
  readonly levels: readonly Level[]
}

/** Stands for a placeholder while a template is split: templates cannot contain NUL. */
const MARK = '\0'

export class BrokerAcl {
  private readonly patterns: Pattern[] = []

  constructor(topics: TopicsConfig, customCommands: readonly CustomCommand[] = []) {
    this.add('up', topics.up, ['c', 'u', 'g'])
    this.add('down', topics.down, ['c', 'u'])
    this.add('status', topics.status, ['c', 'u'])
    this.add('control', topics.control, ['c', 'u'])
    this.add('broadcast', topics.broadcast, [])
    this.add('gatewayStatus', topics.gatewayStatus, ['g'])
    if (topics.peer !== null) this.add('peer', topics.peer, ['c', 'u'])
    if (topics.peerBroadcast !== null) this.add('peerBroadcast', topics.peerBroadcast, [])
    for (const c of customCommands) {
      if (c.up !== null) this.add('rawUp', c.up, ['c', 'u', 'g'])
      if (c.down !== null) this.add('rawDown', c.down, ['c', 'u'])
    }
  }

  /** The classes a topic belongs to (one, as a rule; `other` when no template describes it). */
  classify(topic: string): TopicClass[] {
    if (topic.startsWith('$SYS/')) return ['sys']
    const out: TopicClass[] = []
    for (const p of this.patterns) if (p.topic.test(topic)) out.push(p.cls)
    return out.length === 0 ? ['other'] : out
  }

  /** Whether the topic is of this class (among others, if templates overlap). */
  is(topic: string, cls: TopicClass): boolean {
    return this.patterns.some((p) => p.cls === cls && p.topic.test(topic))
  }

  mayPublish(role: BrokerRole, topic: string): boolean {
    return this.allows(WRITE[role], topic)
  }

  /** Whether a message on `topic` may be delivered to a client of this role (per message: no allocation). */
  mayRead(role: BrokerRole, topic: string): boolean {
    return role === 'gateway' || this.allows(READ[role], topic)
  }

  /** Whether every class of the topic is in `classes`. */
  private allows(classes: ReadonlySet<TopicClass>, topic: string): boolean {
    if (topic.startsWith('$SYS/')) return classes.has('sys')
    let matched = false
    for (const p of this.patterns) {
      if (!p.topic.test(topic)) continue
      if (!classes.has(p.cls)) return false
      matched = true
    }
    return matched || classes.has('other')
  }

  /**
   * Whether a subscription is granted: refused when every topic it could match is in a class the
   * role may not read. A filter that also matches readable topics is granted, and what it may not
   * read is withheld message by message ({@link mayRead}). `$share/<group>/` is looked through.
   */
  maySubscribe(role: BrokerRole, filter: string): boolean {
    if (role === 'gateway') return true
    const levels = withoutShare(filter).split('/')
    if (levels[0] === '$SYS') return READ[role].has('sys')
    return !this.patterns.some((p) => !READ[role].has(p.cls) && subsumes(p.levels, levels))
  }

  private add(cls: TopicClass, template: string, placeholders: ('c' | 'u' | 'g')[]): void {
    const marked = compileTemplate(template, placeholders).render({ c: MARK, u: MARK, g: MARK })
    const levels: Level[] = marked
      .split('/')
      .map((level) =>
        level.includes(MARK) ? { wild: new RegExp(`^${levelSource(level)}$`) } : { literal: level },
      )
    const topic = new RegExp(`^${marked.split('/').map(levelSource).join('/')}$`)
    this.patterns.push({ cls, topic, levels })
  }
}

/** A level's regex source: literal text escaped, each placeholder one or more non-`/` characters. */
function levelSource(level: string): string {
  return level
    .split(MARK)
    .map((text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]+')
}

/** The filter of a shared subscription (`$share/<group>/<filter>`), else the filter itself. */
export function withoutShare(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const slash = filter.indexOf('/', '$share/'.length)
  return slash < 0 ? '' : filter.slice(slash + 1)
}

/** Whether every topic the filter matches is one the pattern matches. */
function subsumes(pattern: readonly Level[], filter: readonly string[]): boolean {
  if (filter.length !== pattern.length) return false
  return pattern.every((level, i) => {
    const f = filter[i]!
    if ('literal' in level) return f === level.literal
    // A level that is a whole placeholder matches any level, so it covers `+`; one with literal
    // text around its placeholder covers only literal levels it matches.
    if (f === '+') return level.wild.source === '^[^/]+$'
    return f !== '#' && level.wild.test(f)
  })
}
