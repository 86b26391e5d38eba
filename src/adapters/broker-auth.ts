import type { AedesOptions, Client } from 'aedes'
import { type BrokerAcl, type BrokerRole, withoutShare } from '../auth/broker-acl.js'
import { hashPassword, samePassword, verifyPassword } from '../auth/passwords.js'
import type { AckLater } from '../bridge/port.js'
import type { BrokerUser } from '../config/broker-users.js'
import { isLoopback } from '../config/resolve.js'
import type { IpGuard } from '../limits/ip-guard.js'
import { type Logger, LogThrottle } from '../log.js'
import { parseJsonObject } from '../protocol/messages.js'

export interface BrokerAuthOptions {
  readonly users: readonly BrokerUser[]
  /** The role of a client that gives no username, from loopback only; 'none' refuses them. */
  readonly anonymousRole: BrokerRole | 'none'
  readonly acl: BrokerAcl
  /** Envelopes above it are not read for their `from`: the gateway drops them unread anyway. */
  readonly maxDownlinkSize: number
  /** Login failures count towards an address's ban, as for devices. */
  readonly guard?: IpGuard
  readonly logger: Logger
}

/** Who a client is: its role, and its username (null when anonymous). */
interface Identity {
  readonly role: BrokerRole
  readonly username: string | null
}

type Hooks = Required<
  Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>
>

/** Answers Aedes' CONNACK return codes (MQTT 3.1.1 3.2.2.3). */
const BAD_CREDENTIALS = 4
const NOT_AUTHORIZED = 5

/**
 * The embedded broker's authentication and authorization: each client logs in as a broker user (or
 * anonymously, from this machine) and gets its role; every PUBLISH, SUBSCRIBE and delivery is checked
 * against the role's rights ({@link BrokerAcl}). The gateway itself uses the broker in-process, not
 * as a client, so nothing here applies to it.
 */
export class BrokerAuth {
  private readonly users: Map<string, BrokerUser>
  private readonly identities = new WeakMap<Client, Identity>()
  private readonly addresses = new WeakMap<Client, string>()
  private readonly throttle: LogThrottle
  /** Checked for unknown usernames, so that they take as long as known ones (made at the first). */
  private dummyHash: Promise<string> | undefined
  /**
   * Told of each publish a client may make, before Aedes acknowledges it — which Aedes does for
   * QoS 1 before routing the message: the gateway's in-process port ({@link AedesPort}) keeps a
   * message here, and its acknowledgement waits until it is written.
   */
  intercept: ((topic: string, payload: Buffer) => AckLater | undefined) | undefined

  constructor(private readonly options: BrokerAuthOptions) {
    this.users = new Map(options.users.map((u) => [u.username, u]))
    this.throttle = new LogThrottle(options.logger)
    for (const u of options.users) {
      if (u.password !== undefined) {
        options.logger.warn(
          `broker user ${JSON.stringify(u.username)} has a plain-text password: store a passwordHash instead (hypertcp-gateway --hash-password)`,
        )
      }
    }
  }

  /** Where a client connected from (the socket's peer), told by the listener that accepted it. */
  connected(client: Client, address: string): void {
    this.addresses.set(client, address)
  }

  hooks(): Hooks {
    return {
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (identity) => {
            if (typeof identity === 'number') {
              const err = Object.assign(new Error('not authorized'), { returnCode: identity })
              return done(err as Parameters<typeof done>[0], false)
            }
            this.identities.set(client, identity)
            done(null, true)
          },
          () =>
            done(
              Object.assign(new Error('server unavailable'), { returnCode: 3 }) as Parameters<typeof done>[0],
              false,
            ),
        )
      },
      authorizePublish: (client, packet, done) => {
        if (client === null) return done(null) // a will published after its client left
        const reason = this.refusePublish(client, packet)
        if (reason === undefined) {
          const later = this.intercept?.(packet.topic, packet.payload as Buffer)
          if (later === undefined) return done(null)
          return later(() => done(null))
        }
        const identity = this.identities.get(client)
        this.throttle.warn(`publish:${identity?.username ?? ''}`, 'mqtt publish refused, client closed', {
          clientId: client.id,
          username: identity?.username ?? null,
          role: identity?.role ?? null,
          topic: packet.topic,
          reason,
        })
        done(new Error(reason))
      },
      authorizeSubscribe: (client, sub, done) => {
        const role = this.identities.get(client)?.role
        if (role !== undefined && this.options.acl.maySubscribe(role, sub.topic)) return done(null, sub)
        this.throttle.warn(`subscribe:${client.id}`, 'mqtt subscription refused', {
          clientId: client.id,
          role: role ?? null,
          filter: withoutShare(sub.topic),
        })
        done(null, null) // SUBACK 0x80 for this filter; the client stays
      },
      // Per delivered message: a role reads only its classes, whatever filter matched.
      authorizeForward: (client, packet) => {
        const role = this.identities.get(client)?.role
        return role !== undefined && this.options.acl.mayRead(role, packet.topic) ? packet : null
      },
    }
  }

  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Identity | number> {
    const address = this.addresses.get(client) ?? ''
    const guard = this.options.guard
    if (guard?.isBanned(address, Date.now())) {
      this.refused(address, username, 'address banned after repeated login failures')
      return NOT_AUTHORIZED
    }
    if (username === undefined || username === '') {
      const role = this.options.anonymousRole
      if (role !== 'none' && isLoopbackAddress(address)) return { role, username: null }
      this.refused(
        address,
        username,
        role === 'none' ? 'anonymous clients are refused' : 'anonymous clients only from this machine',
      )
      return NOT_AUTHORIZED
    }
    const user = this.users.get(username)
    const given = password ?? Buffer.alloc(0)
    let ok: boolean
    if (user === undefined) {
      this.dummyHash ??= hashPassword('not a password')
      ok = (await verifyPassword(given, await this.dummyHash)) && false
    } else if (user.passwordHash !== undefined) ok = await verifyPassword(given, user.passwordHash)
    else ok = samePassword(given, user.password!)
    if (ok) return { role: user!.role, username }
    this.refused(address, username, 'bad username or password')
    if (guard?.loginFailed(address, Date.now())) {
      this.options.logger.warn('address banned after repeated broker login failures', { remote: address })
    }
    return BAD_CREDENTIALS
  }

  private refused(address: string, username: string | undefined, reason: string): void {
    this.throttle.warn(`login:${address}`, 'mqtt login refused', {
      remote: address,
      username: username ?? null,
      reason,
    })
  }

  /** Why a client's PUBLISH is refused, or undefined; an envelope's `from` may be rewritten. */
  private refusePublish(
    client: Client,
    packet: { topic: string; payload: Buffer | string },
  ): string | undefined {
    const identity = this.identities.get(client)
    if (identity === undefined) return 'not logged in'
    if (identity.role === 'gateway') return undefined
    const { acl } = this.options
    const topic = packet.topic
    if (!acl.mayPublish(identity.role, topic)) return `role ${identity.role} may not publish here`
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    if (acl.is(topic, 'control') && this.isTakeover(payload)) return 'only a gateway may announce a takeover'
    if (acl.is(topic, 'down') || acl.is(topic, 'broadcast')) {
      const rewritten = this.ownFrom(payload, identity.username ?? 'server')
      if (rewritten !== undefined) packet.payload = rewritten
    }
    return undefined
  }

  /** A larger control message is dropped by the gateway unread: it is no takeover. */
  private isTakeover(payload: Buffer): boolean {
    return payload.length <= this.options.maxDownlinkSize && parseJsonObject(payload)?.action === 'takeover'
  }

  /**
   * Only the gateway speaks for devices: an envelope `{"from": …, "payload": …}` from anyone else
   * names its sender, its username (or `server` when anonymous). Returns the new payload, if any.
   */
  private ownFrom(payload: Buffer, sender: string): Buffer | undefined {
    if (payload.length > this.options.maxDownlinkSize) return undefined
    const value = parseJsonObject(payload)
    if (value === undefined || !('payload' in value) || value.from === undefined || value.from === sender)
      return
    return Buffer.from(JSON.stringify({ ...value, from: sender }))
  }
}

/** A socket's peer address on loopback, IPv4-mapped IPv6 ones too. */
export function isLoopbackAddress(address: string): boolean {
  return isLoopback(address.startsWith('::ffff:') ? address.slice(7) : address)
}
