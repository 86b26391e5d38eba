/**
 * The bridge between sessions and MQTT.
 *
 * Longer than 300 lines: attaching a device (takeover, subscriptions, presence), its uplinks and
 * what arrives for it — kept while it is away, handed over when it moves — share one map of
 * devices and topics; subscriptions (subscriptions.ts), the pacing of broker work (pacer.ts), the
 * choice of connection (lanes.ts), the store's delivery rules (downlinks.ts), what reaches a device
 * and is counted (to-device.ts) and the control topic's kicks, redirects and takeovers
 * (control.ts) are apart.
 */
import { performance } from 'node:perf_hooks'
import type { ExternalAuth } from '../auth/external.js'
import type { AuthResult, DeviceRegistry } from '../auth/registry.js'
import type { GatewayConfig } from '../config/settings.js'
import { GatewayError, PublishRefusedError } from '../errors.js'
import { FlapGuard } from '../limits/flap-guard.js'
import { TokenBucket } from '../limits/token-bucket.js'
import { type Logger, LogThrottle } from '../log.js'
import { Cmd, Status } from '../protocol/constants.js'
import { envelopePrefix, type LoginRequest, parseJsonObject } from '../protocol/messages.js'
import { compileTemplate, gatewayStatusTopic, type TopicTemplate } from '../protocol/topics.js'
import { isSettled, type Session } from '../session/session.js'
import type { CloseReason, SessionHost, UplinkDone, UplinkKind } from '../session/types.js'
import type { GatewayStats } from '../stats.js'
import { ControlTopic } from './control.js'
import type { Downlinks } from './downlinks.js'
import { inShare, laneIndex, type Share } from './lanes.js'
import { Pacer } from './pacer.js'
import type { AckLater, MqttPort } from './port.js'
import { Subscriptions } from './subscriptions.js'
import { ToDevice } from './to-device.js'

/** A logged-in (or logging-in) device as the bridge tracks it. */
interface Attached {
  readonly session: Session
  readonly up: string
  readonly down: string
  readonly status: string
  readonly control: string
  /** Its peer topic (`topics.peer`), if gateways use one. */
  readonly peer: string | undefined
  /** When it was attached (ms), to ignore takeovers older than this login. */
  readonly at: number
  /** `{"from":"<id>","payload":` of the envelopes it sends ([HT-4.4], [HT-5.3]). */
  readonly fromPrefix: string
  /** [HT-5.6] Its custom down topics, one per custom command type that has one. */
  readonly rawDown: readonly string[]
  /** The broker connection that carries its traffic. */
  readonly lane: Lane
}

/** A broker connection, and the subscriptions made on it. */
interface Lane {
  readonly mqtt: MqttPort
  readonly subscriptions: Subscriptions
}

/** A device whose messages this instance keeps while it is away (store-and-forward). */
interface Held {
  readonly deviceId: string
  readonly username: string
  readonly down: string
  readonly status: string
  readonly peer: string | undefined
  readonly lane: Lane
}

type Route =
  | { readonly kind: 'down' | 'control' | 'peer'; readonly device: Attached }
  /** [HT-5.6] Messages sent to the device as frames of `type`. */
  | { readonly kind: 'raw'; readonly device: Attached; readonly type: number }
  /**
   * A held device's down (or peer) topic while it is not here: kept. Its status topic: where it
   * went.
   */
  | { readonly kind: 'held' | 'heldPeer' | 'presence'; readonly held: Held }
  /** [HT-5.3] The broadcast topic; the peer broadcast topic, whose `from` is believed. */
  | { readonly kind: 'broadcast'; readonly trusted: boolean }

/** How every message gateways send each other on a peer topic that is not an envelope begins. */
const ACTION = Buffer.from('{"action":')

/** A login waiting for the next flush of broker work. */
interface PendingLogin {
  readonly device: Attached
  readonly resolve: () => void
  readonly reject: (err: Error) => void
}

const NONE: readonly string[] = []

/** MQTT 5 reason code "not authorized" (MQTT 5 2.4): an ACL refused the publish. */
const NOT_AUTHORIZED = 0x87

/**
 * At most one flush of login and logout broker work (takeovers, SUBSCRIBE, UNSUBSCRIBE,
 * presence) per this many ms: a login ramp then costs each broker connection one packet of
 * subscriptions (and one write, one SUBACK) per window instead of one per login, while a lone
 * login waits for nothing. With 8 connections a 2 ms window held one or two logins per connection
 * in a ramp of 19,700 devices; 10 ms cut the gateway's CPU per login by about a fifth with
 * Mosquitto and embedded (bench/README.md, "Results"), for at most 10 ms more per login in a ramp.
 */
export const BROKER_BATCH_MS = 10

export interface BridgeOptions {
  readonly config: GatewayConfig
  /**
   * The broker connections (at least one): each device's traffic goes over one of them, chosen
   * by its id ({@link laneIndex}); the first also carries the broadcast subscription.
   */
  readonly mqtt: readonly MqttPort[]
  readonly registry: DeviceRegistry
  readonly logger: Logger
  readonly stats: GatewayStats
  /** Asked about tokens the registry does not know (`authUrl`), if any. */
  readonly externalAuth?: ExternalAuth
  /** Store-and-forward and at-least-once delivery, unless `offlineQueueMessages` is 0. */
  readonly downlinks?: Downlinks
  /**
   * One of `count` workers sharing a host (`workers`): of the devices not seen yet, this one keeps
   * for those whose id falls to it ({@link laneIndex}), so that each has one keeper.
   */
  readonly share?: Share
}

/**
 * Maps sessions to MQTT ([HT-4], [HT-5]): publishes what devices send, subscribes each logged-in
 * device's down and control topics, delivers what arrives there, keeps retained presence, and
 * settles takeovers between connections and between gateway instances. Everything between
 * instances travels through the broker ([HT-6.3]).
 */
export class Bridge implements SessionHost {
  readonly gatewayId: string
  private readonly config: GatewayConfig
  private readonly lanes: readonly Lane[]
  private registry: DeviceRegistry
  private readonly logger: Logger
  private readonly stats: GatewayStats
  private readonly externalAuth: ExternalAuth | undefined
  private readonly templates: Record<'up' | 'down' | 'status' | 'control', TopicTemplate>
  private readonly broadcastTopic: string
  /**
   * `topics.peer`, `topics.peerBroadcast`: where gateways send each other what only they may say
   * (a device's `from`, a takeover), when set; then neither is believed on the down, broadcast or
   * control topic, which others write too.
   */
  private readonly peer: { readonly template: TopicTemplate; readonly broadcast: string } | undefined
  /** The broadcast topics' routes: a `from` believed unless peer topics carry the true ones. */
  private readonly broadcastRoute: Route
  private readonly peerBroadcastRoute: Route = { kind: 'broadcast', trusted: true }
  readonly gatewayStatusTopic: string
  /** [HT-5.6] Custom command types taken from devices → their up topic. */
  private readonly rawUp = new Map<number, TopicTemplate>()
  /** [HT-5.6] Custom command types sent to devices, with their down topic. */
  private readonly rawDown: { readonly type: number; readonly template: TopicTemplate }[] = []

  /** Devices on this instance, by id. */
  private readonly devices = new Map<string, Attached>()
  /** Devices whose messages are kept here while they are away, by id. */
  private readonly held = new Map<string, Held>()
  private readonly downlinks: Downlinks | undefined
  private readonly share: BridgeOptions['share']
  /** Subscribed topic → what it is for. */
  private readonly routes = new Map<string, Route>()
  /** Logins since the last flush, in order. */
  private logins: PendingLogin[] = []
  private readonly pacer = new Pacer(BROKER_BATCH_MS, () => this.flush())
  /** Warnings a stream of messages can trigger, at most one per kind per 10 s. */
  private readonly throttle: LogThrottle
  /** What reaches devices from the broker: read, limited, counted. */
  private readonly out: ToDevice
  /** How this instance's takeover announcements begin ([HT-3.3]). */
  private readonly ownTakeoverText: string
  /** [HT-5.5] Kicks, redirects and takeovers from the control (and peer) topics. */
  private readonly control: ControlTopic<Attached>
  /** Broadcasts taken from devices here, and from the broker ([HT-5.3]): `broadcastRate`. */
  private readonly broadcastsOut: RateBudget
  private readonly broadcastsIn: RateBudget
  /** Logins of one id too often: delayed ({@link FlapGuard}). */
  private readonly flaps: FlapGuard
  /** Publishes handed to the broker and not yet settled. */
  private pending = 0
  private drainWaiters: (() => void)[] = []
  /** Set when shutting down: skips per-device unsubscribes (the connection is about to go). */
  private closing = false
  /** When this instance started: a presence of its own from before is from an earlier run. */
  private readonly startedAt = Date.now()

  constructor({ config, mqtt, registry, logger, stats, externalAuth, downlinks, share }: BridgeOptions) {
    this.config = config
    this.share = share
    this.externalAuth = externalAuth
    this.downlinks = downlinks
    if (mqtt.length === 0) throw new GatewayError('HT_ERR_INTERNAL', 'the bridge needs a broker connection')
    this.lanes = mqtt.map((port) => ({
      mqtt: port,
      subscriptions: new Subscriptions(port, config.qos.down, (topic, code) => {
        stats.subscriptionsRefused++
        logger.error('the broker refused a subscription: its messages will not reach the gateway', {
          topic,
          code: `0x${code.toString(16)}`,
        })
      }),
    }))
    this.registry = registry
    this.logger = logger
    this.stats = stats
    this.gatewayId = config.gatewayId
    const t = config.topics
    this.templates = {
      up: compileTemplate(t.up, ['c', 'u', 'g']),
      down: compileTemplate(t.down, ['c', 'u']),
      status: compileTemplate(t.status, ['c', 'u']),
      control: compileTemplate(t.control, ['c', 'u']),
    }
    this.broadcastTopic = compileTemplate(t.broadcast, []).render({})
    if (t.peer !== null && t.peerBroadcast !== null)
      this.peer = {
        template: compileTemplate(t.peer, ['c', 'u']),
        broadcast: compileTemplate(t.peerBroadcast, []).render({}),
      }
    this.broadcastRoute = { kind: 'broadcast', trusted: this.peer === undefined }
    for (const custom of config.customCommands) {
      if (custom.up !== null) this.rawUp.set(custom.type, compileTemplate(custom.up, ['c', 'u', 'g']))
      if (custom.down !== null)
        this.rawDown.push({ type: custom.type, template: compileTemplate(custom.down, ['c', 'u']) })
    }
    this.gatewayStatusTopic = gatewayStatusTopic(t.gatewayStatus, this.gatewayId)
    this.throttle = new LogThrottle(logger)
    this.out = new ToDevice(stats, this.throttle, this.broadcastTopic)
    this.ownTakeoverText = `{"action":"takeover","gateway":${JSON.stringify(this.gatewayId)},`
    this.control = new ControlTopic<Attached>(
      {
        gatewayId: this.gatewayId,
        holds: (id) => this.held.has(id),
        serves: (id) => this.devices.has(id),
        publishOffline: (device, state) =>
          this.publish(
            device.lane.mqtt,
            device.status,
            JSON.stringify(state),
            config.qos.presence,
            true,
            (err) => {
              if (err)
                this.logger.warn('offline presence not published', {
                  deviceId: device.session.deviceId,
                  error: err.message,
                })
            },
          ),
      },
      config,
      this.ownTakeoverText,
      logger,
      stats,
      this.throttle,
    )
    this.broadcastsOut = rateBudget(config.broadcastRate, config.broadcastBurst)
    this.broadcastsIn = rateBudget(config.broadcastRate, config.broadcastBurst)
    this.flaps = new FlapGuard(
      config.loginFlapLimit,
      config.loginFlapWindow * 1000,
      config.loginTimeout * 500,
    )
    for (const lane of this.lanes) {
      lane.mqtt.onMessage((topic, payload, retained) => {
        // A retained message replayed at subscription time is not a command for now: replaying a
        // retained kick, toggle or broadcast at every login would be a hazard, not a feature. Only
        // a held device's retained presence is read: it says where the device is.
        if (!retained) return this.onMessage(lane, topic, payload)
        const route = this.routes.get(topic)
        if (route?.kind === 'presence') this.onPresence(route.held, payload, true)
        return undefined
      })
    }
  }

  /**
   * Subscriptions every instance holds, whatever its devices ([HT-5.3]): wanted now, made by the
   * first connection's {@link restore}. Resolves once the broker confirmed them.
   */
  start(): Promise<void> {
    const broadcasts =
      this.peer === undefined ? [this.broadcastTopic] : [this.broadcastTopic, this.peer.broadcast]
    const waits = [this.lanes[0]!.subscriptions.add(broadcasts)]
    if (this.downlinks !== undefined) {
      // Store-and-forward: every device of the registry, and the auth hook's devices served here
      // before, whether they ever log in or not.
      const devices = new Map<string, string>()
      for (const id of this.registry.ids()) if (this.mine(id)) devices.set(id, this.registry.usernameOf(id))
      for (const d of this.config.dialOut) devices.set(d.id, d.username ?? d.id)
      for (const d of this.downlinks.store.load()) devices.set(d.deviceId, d.username)
      for (const [id, username] of devices) waits.push(this.hold(id, username))
    }
    return Promise.all(waits).then(() => undefined)
  }

  /** Keeps the device's messages while it is away: its down and status topics stay subscribed. */
  private hold(deviceId: string, username: string): Promise<readonly string[]> {
    if (this.held.has(deviceId)) return Promise.resolve(NONE)
    const values = { c: deviceId, u: username }
    const held: Held = {
      deviceId,
      username,
      down: this.templates.down.render(values),
      status: this.templates.status.render(values),
      peer: this.peer?.template.render(values),
      lane: this.laneOf(deviceId),
    }
    this.held.set(deviceId, held)
    if (!this.devices.has(deviceId)) this.keepRoutes(held)
    this.routes.set(held.status, { kind: 'presence', held })
    return held.lane.subscriptions.add(heldTopics(held))
  }

  /** A held device not here: what comes on its down and peer topics is kept. */
  private keepRoutes(held: Held): void {
    this.routes.set(held.down, { kind: 'held', held })
    if (held.peer !== undefined) this.routes.set(held.peer, { kind: 'heldPeer', held })
  }

  /**
   * [HT-6.3] Another instance serves the device, or served it last (its presence, online or
   * offline, names that gateway — read retained at start, or live): that one keeps its queue. What
   * is kept for it here is published to its down topic, in order, where that instance takes it;
   * this one keeps nothing more for it until the device logs in here. A presence naming this
   * gateway online from an earlier run (it stopped uncleanly: nothing said the device left) is
   * put right: offline, `connection_lost`; so is another gateway's offline presence of a device
   * online here (a correction of that kind crossing this login), by this one's online presence —
   * unless it is a retained one from before this login, replayed as the status topic was
   * subscribed: this login's presence went to the broker after that SUBSCRIBE and replaced it.
   */
  private onPresence(held: Held, message: Buffer, retained = false): void {
    const presence = parseJsonObject(message)
    const gateway = presence?.gateway
    const here = this.devices.get(held.deviceId)
    if (here !== undefined) {
      const stale = retained && typeof presence?.at === 'number' && presence.at <= here.at
      if (!stale && presence?.online === false && typeof gateway === 'string' && gateway !== this.gatewayId)
        this.publishPresence(here, this.onlineState(here, here.at), true).catch((err: Error) =>
          here.session.logger.warn('presence not republished', { error: err.message }),
        )
      return // else its own presence, or a stale one
    }
    if (presence?.online === true) this.control.online(held.deviceId, gateway)
    if (gateway === this.gatewayId) {
      const at = presence?.at
      if (presence?.online === true && typeof at === 'number' && at < this.startedAt) this.lost(held, at)
      return
    }
    // A takeover's offline presence is the old owner's: the new one announces itself next.
    if (typeof gateway !== 'string' || presence?.reason === 'takeover') return
    this.held.delete(held.deviceId)
    this.downlinks!.store.forget(held.deviceId)
    this.routes.delete(held.down)
    if (held.peer !== undefined) this.routes.delete(held.peer)
    this.routes.delete(held.status)
    held.lane.subscriptions.remove(heldTopics(held))
    this.pacer.request()
    const kept = this.downlinks!.handOver(held.deviceId)
    if (kept.length === 0) return
    this.stats.handedOver += kept.length
    this.logger.info('kept downlinks handed over: another instance serves the device', {
      deviceId: held.deviceId,
      gateway,
      messages: kept.length,
    })
    // What is kept is what this gateway made of each message (a `from` it believed, or `server`):
    // with peer topics, the other gateway is to believe it too.
    for (const k of kept)
      this.publish(held.lane.mqtt, held.peer ?? held.down, k.body, 1, false, (err) => {
        if (err)
          this.logger.warn('kept downlink not handed over', { deviceId: held.deviceId, error: err.message })
      })
  }

  /** A message no route wants: from a broker that keeps sessions, a subscription left over is ended. */
  private stray(lane: Lane, topic: string): undefined {
    if (lane.mqtt.keepsSession === true && lane.subscriptions.stray(topic)) {
      this.stats.subscriptionsLeftOver++
      this.logger.debug('a subscription left in the broker session from before: unsubscribing', { topic })
      this.pacer.request()
    }
    return undefined
  }

  /** `held` was online here in an earlier run, since `since`: its presence says it is not. */
  private lost(held: Held, since: number): void {
    const state = { online: false, at: Date.now(), gateway: this.gatewayId, reason: 'connection_lost' }
    this.logger.info('presence put right: the device was online here before a restart', {
      deviceId: held.deviceId,
      since: new Date(since).toISOString(),
    })
    this.publish(
      held.lane.mqtt,
      held.status,
      JSON.stringify(state),
      this.config.qos.presence,
      true,
      (err) => {
        if (err) this.logger.warn('presence not put right', { deviceId: held.deviceId, error: err.message })
      },
    )
  }

  /**
   * Broker connection `index` is up (or back): the broker (clean session) has no subscriptions of
   * ours and may have published our last will. Subscribes everything wanted on it again, and
   * republishes the presence of its devices (saying `"downlink": false` where the broker refused
   * their down topic).
   */
  restore(index: number): void {
    const lane = this.lanes[index]!
    lane.subscriptions.restore()
    for (const device of this.devices.values()) {
      if (device.session.state !== 'online' || device.lane !== lane) continue
      lane.subscriptions
        .add([device.down])
        .then((refused) => {
          const state = this.onlineState(device, Date.now())
          return this.publishPresence(
            device,
            refused.length > 0 ? { ...state, downlink: false } : state,
            true,
          )
        })
        .catch((err: Error) => device.session.logger.warn('presence not republished', { error: err.message }))
    }
  }

  get size(): number {
    return this.devices.size
  }

  authenticate(request: LoginRequest, ip: string): AuthResult | Promise<AuthResult> {
    const result = this.registry.authenticate(request.token, request.deviceId)
    if (result.ok || result.reason !== 'invalid_token' || this.externalAuth === undefined) return result
    return this.externalAuth.authenticate(request, ip)
  }

  /**
   * Swaps in a reloaded device registry. Connections whose token was revoked, or whose id the
   * token no longer allows, are closed (reason `kicked`). Returns how many were.
   */
  replaceRegistry(registry: DeviceRegistry): number {
    this.registry = registry
    if (this.downlinks !== undefined) {
      // New devices are kept for from now on (removed ones keep what was kept for them).
      for (const id of registry.ids())
        if (!this.held.has(id) && this.mine(id)) this.hold(id, registry.usernameOf(id)).catch(noop)
      this.pacer.request()
    }
    let kicked = 0
    for (const device of [...this.devices.values()]) {
      const session = device.session
      if (session.identity === undefined || registry.stillAdmits(session.identity)) continue
      session.logger.info('token revoked by a registry reload: closing')
      session.close('kicked')
      kicked++
    }
    return kicked
  }

  /**
   * [HT-3.3] Takeover: a newer login of the same device wins. Locally the older session is
   * closed here; other instances are told on the device's control topic. Then the down and
   * control topics are subscribed and presence announced; the login is answered after the
   * broker confirmed both, so a downlink published right after the login reply is delivered.
   * The broker work of logins close together is sent together ({@link BROKER_BATCH_MS}).
   */
  attach(session: Session): Promise<void> {
    const wait = this.flaps.delay(session.identity!.deviceId, Date.now())
    if (wait === 0) return this.attachNow(session)
    this.stats.loginsDelayed++
    this.throttle.warn(
      'login_flapping',
      'login delayed: the device id logs in too often (takeover flapping)',
      {
        deviceId: session.deviceId,
        delayMs: wait,
      },
    )
    return new Promise<void>((resolve) => setTimeout(resolve, wait).unref()).then(() =>
      // Closed meanwhile (login timeout, the device left): nothing to attach.
      session.state === 'authenticating' ? this.attachNow(session) : undefined,
    )
  }

  private attachNow(session: Session): Promise<void> {
    const identity = session.identity!
    const lane = this.laneOf(identity.deviceId)
    if (!lane.mqtt.connected) return Promise.reject(notConnected())
    const values = { c: identity.deviceId, u: identity.username, g: this.gatewayId }
    const device: Attached = {
      session,
      up: this.templates.up.render(values),
      down: this.templates.down.render(values),
      status: this.templates.status.render(values),
      control: this.templates.control.render(values),
      peer: this.peer?.template.render(values),
      at: Date.now(),
      fromPrefix: envelopePrefix(identity.deviceId),
      rawDown: this.rawDown.length === 0 ? NONE : this.rawDown.map((r) => r.template.render(values)),
      lane,
    }
    const previous = this.devices.get(identity.deviceId)
    this.devices.set(identity.deviceId, device)
    if (this.downlinks !== undefined) {
      // Served here: kept for from now on, across restarts too (a device this instance does not
      // hold by itself: the auth hook's, or one outside a worker's share).
      if (!this.held.has(identity.deviceId))
        this.downlinks.store.remember({ deviceId: identity.deviceId, username: identity.username })
      this.hold(identity.deviceId, identity.username).catch(noop)
    }
    this.routes.set(device.down, { kind: 'down', device })
    this.routes.set(device.control, { kind: 'control', device })
    if (device.peer !== undefined) this.routes.set(device.peer, { kind: 'peer', device })
    for (let i = 0; i < device.rawDown.length; i++) {
      this.routes.set(device.rawDown[i]!, { kind: 'raw', device, type: this.rawDown[i]!.type })
    }
    if (previous !== undefined) previous.session.close('takeover')
    return new Promise((resolve, reject) => {
      this.logins.push({ device, resolve, reject })
      this.pacer.request()
    })
  }

  /**
   * The broker work of the logins and logouts since the last flush, in an order that holds for
   * each device: other instances see its takeover before its subscription exists, and its
   * presence after it. Takeovers are QoS 0: best effort by nature (gateways hold clean sessions,
   * so there is no offline queue to reach; a lost announcement leaves the older connection to its
   * keepalive), and the login reply need not wait for them.
   */
  private flush(): void {
    const logins = this.logins
    this.logins = []
    const current: PendingLogin[] = []
    for (const login of logins) {
      // Gone (closed, taken over) before its turn: nothing to announce or subscribe.
      if (this.attached(login.device.session) !== login.device) login.resolve()
      else if (!login.device.lane.mqtt.connected) login.reject(notConnected())
      else current.push(login)
    }
    for (const { device } of current) {
      const takeover = `${this.ownTakeoverText}"session":${JSON.stringify(device.session.id)},"at":${device.at}}`
      device.lane.mqtt.publish(device.peer ?? device.control, takeover, { qos: 0 }, noop)
    }
    const subscribed = current.map(({ device }) =>
      device.lane.subscriptions.add(attachedTopics(device, true)),
    )
    for (const lane of this.lanes) if (lane.mqtt.connected) lane.subscriptions.flush()
    for (let i = 0; i < current.length; i++) {
      const { device, resolve, reject } = current[i]!
      const online = this.onlineState(device, device.at)
      const announced = this.publishPresence(device, online, true)
      Promise.all([subscribed[i]!, announced]).then(([refused]) => {
        // Logged in all the same (its uplinks work); the presence says what does not.
        if (refused.includes(device.down) && this.attached(device.session) === device) {
          this.publishPresence(device, { ...online, downlink: false }, true).catch(noop)
        }
        resolve()
      }, reject)
    }
  }

  /** Whether this worker keeps for a device not seen yet ({@link BridgeOptions.share}). */
  private mine(deviceId: string): boolean {
    return inShare(this.share, deviceId)
  }

  /** The broker connection of a device ({@link laneIndex}). */
  private laneOf(deviceId: string): Lane {
    return this.lanes[laneIndex(deviceId, this.lanes.length)]!
  }

  uplink(session: Session, kind: UplinkKind, targetId: string, payloadJson: string, done: UplinkDone): void {
    const device = this.attached(session)
    if (device === undefined) {
      done(Status.SERVER_ERROR)
      return
    }
    const identity = session.identity!
    if (
      (kind === 'direct' && !identity.mayMessage(targetId)) ||
      (kind === 'broadcast' && !identity.mayBroadcast)
    ) {
      // Publish ACL: this device may not reach that topic.
      session.debug('uplink not allowed', { kind, targetId })
      done(Status.NOT_ALLOWED)
      return
    }
    // One broadcast is a frame to every device: the instance takes broadcastRate of them.
    if (kind === 'broadcast' && !this.broadcastsOut.take(Date.now())) {
      this.stats.throttled++
      this.throttle.warn('broadcast_rate_up', 'broadcast refused: over broadcastRate', {
        deviceId: session.deviceId,
        rate: this.config.broadcastRate,
      })
      done(Status.QUOTA_LIMIT)
      return
    }
    // [HT-5.1] The payload as is to the server; to devices, the envelope they read ([HT-2.6]).
    const body = kind === 'server' ? payloadJson : `${device.fromPrefix}${payloadJson}}`
    let topic: string
    let qos: 0 | 1 | 2
    switch (kind) {
      case 'server': // [HT-4.2]
        topic = device.up
        qos = this.config.qos.up
        break
      case 'direct': // [HT-4.4]: the target's down (or peer) topic, whichever instance holds it
        topic = (this.peer?.template ?? this.templates.down).render({
          c: targetId,
          u: this.registry.usernameOf(targetId),
        })
        qos = this.config.qos.direct
        break
      case 'broadcast': // [HT-5.3]
        topic = this.peer?.broadcast ?? this.broadcastTopic
        qos = this.config.qos.broadcast
        break
    }
    this.publishUplink(device.lane.mqtt, session, topic, body, qos, done)
  }

  takesRaw(type: number): boolean {
    return this.rawUp.has(type)
  }

  /** [HT-5.6] A custom frame's body, verbatim, to its up topic at the up QoS. */
  uplinkRaw(session: Session, type: number, body: Buffer, done: UplinkDone): void {
    const template = this.rawUp.get(type)
    const device = this.attached(session)
    if (device === undefined || template === undefined) {
      done(Status.SERVER_ERROR)
      return
    }
    const identity = session.identity!
    const topic = template.render({ c: identity.deviceId, u: identity.username, g: this.gatewayId })
    this.publishUplink(device.lane.mqtt, session, topic, body, this.config.qos.up, done)
  }

  /** Bytes a device sent (raw framing), verbatim to its up topic at the up QoS. */
  uplinkBytes(session: Session, body: Buffer, done: UplinkDone): void {
    const device = this.attached(session)
    if (device === undefined) {
      done(Status.SERVER_ERROR)
      return
    }
    this.publishUplink(device.lane.mqtt, session, device.up, body, this.config.qos.up, done)
  }

  /** The session's entry, if it is the device's current connection here (not taken over, not gone). */
  private attached(session: Session): Attached | undefined {
    const id = session.deviceId
    const device = id === undefined ? undefined : this.devices.get(id)
    return device?.session === session ? device : undefined
  }

  /** A device's message to the broker; `done` gets 0 once the broker has it, else the status. */
  private publishUplink(
    mqtt: MqttPort,
    session: Session,
    topic: string,
    body: string | Buffer,
    qos: 0 | 1 | 2,
    done: UplinkDone,
  ): void {
    if (this.pending >= this.config.maxPendingPublishes) {
      // [HT-4.5] Past the buffer: an error status, never a false success.
      this.throttle.warn('pending_full', 'uplink refused: too many publishes awaiting the broker', {
        pending: this.pending,
      })
      done(Status.SERVER_ERROR)
      return
    }
    const started = performance.now()
    this.publish(mqtt, topic, body, qos, false, (err) => {
      if (err === undefined) {
        this.stats.publishAck.observe((performance.now() - started) / 1000)
        return done(0)
      }
      if (err instanceof PublishRefusedError) {
        // MQTT 5: the broker said no (an ACL, a quota): the device is told so, never "ok".
        this.stats.refusedByBroker++
        this.throttle.warn(`refused_${err.reasonCode}`, 'the broker refused an uplink', {
          deviceId: session.deviceId,
          topic,
          reason: err.message,
        })
        done(err.reasonCode === NOT_AUTHORIZED ? Status.NOT_ALLOWED : Status.SERVER_ERROR)
        return
      }
      session.logger.warn('publish failed', { topic, error: err.message })
      done(Status.SERVER_ERROR)
    })
  }

  detach(session: Session, reason: CloseReason): void {
    const id = session.deviceId
    if (id === undefined) return // never logged in: nothing announced, nothing subscribed
    const device = this.attached(session)
    // Not current and not taken over: attach never ran (broker down), nothing to undo or announce.
    if (device === undefined && reason !== 'takeover') return
    if (device !== undefined) {
      this.devices.delete(id)
      this.routes.delete(device.down)
      this.routes.delete(device.control)
      if (device.peer !== undefined) this.routes.delete(device.peer)
      for (const topic of device.rawDown) this.routes.delete(topic)
      const held = this.held.get(id)
      // Held: its down and peer topics stay subscribed, and what comes is kept.
      if (held !== undefined) this.keepRoutes(held)
      if (!this.closing) {
        device.lane.subscriptions.remove(attachedTopics(device, held === undefined))
        this.pacer.request()
      }
    }
    // [HT-5.4] Offline presence with the reason. A takeover's is not retained: the retained
    // state must stay the newer connection's "online", whichever instance published it.
    const topic = this.templates.status.render({ c: id, u: session.identity!.username })
    const state = { online: false, at: Date.now(), reason, gateway: this.gatewayId }
    const { mqtt } = device?.lane ?? this.laneOf(id)
    this.publish(
      mqtt,
      topic,
      JSON.stringify(state),
      this.config.qos.presence,
      reason !== 'takeover',
      (err) => {
        if (err) this.logger.warn('offline presence not published', { deviceId: id, error: err.message })
      },
    )
  }

  /**
   * [HT-5.4] A device's online presence; a device of another dialect than HyperTCP says which, and
   * what it told of itself (a Blynk device's info); a device the gateway dials says so.
   */
  private onlineState(device: Attached, at: number): Record<string, unknown> {
    const state: Record<string, unknown> = { online: true, at, gateway: this.gatewayId }
    const session = device.session
    if (session.dialect !== 'hypertcp') state.dialect = session.dialect
    if (session.info !== undefined) state.info = session.info
    if (session.peer !== undefined) state.dialOut = true // the gateway dials it
    return state
  }

  /** The device told what it is (after its login): its retained presence says so. */
  described(session: Session): void {
    const device = this.attached(session)
    if (device === undefined) return
    this.publishPresence(device, this.onlineState(device, device.at), true).catch((err: Error) =>
      session.logger.warn('presence not republished', { error: err.message }),
    )
  }

  private publishPresence(device: Attached, state: object, retain: boolean): Promise<void> {
    return this.call((done) =>
      this.publish(
        device.lane.mqtt,
        device.status,
        JSON.stringify(state),
        this.config.qos.presence,
        retain,
        done,
      ),
    )
  }

  /** Publishes, counting what awaits the broker (bounded by maxPendingPublishes, drained on shutdown). */
  private publish(
    mqtt: MqttPort,
    topic: string,
    body: string | Buffer,
    qos: 0 | 1 | 2,
    retain: boolean,
    done: (err?: Error) => void,
  ): void {
    this.pending++
    mqtt.publish(topic, body, { qos, retain }, (err) => {
      this.pending--
      done(err)
      if (this.pending === 0 && this.drainWaiters.length > 0) {
        const waiters = this.drainWaiters
        this.drainWaiters = []
        for (const w of waiters) w()
      }
    })
  }

  private call(fn: (done: (err?: Error) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())))
  }

  private onMessage(lane: Lane, topic: string, message: Buffer): AckLater | undefined {
    const route =
      topic === this.broadcastTopic
        ? this.broadcastRoute
        : topic === this.peer?.broadcast
          ? this.peerBroadcastRoute
          : this.routes.get(topic)
    // Not ours: a late message for a device that has left (or, embedded, any client's publish),
    // or one from a subscription a kept broker session still has.
    if (route === undefined) return this.stray(lane, topic)
    // Size before parse: a message no device could be sent is dropped before a byte of it is read
    // (a raw custom-command message, never parsed, is checked by the session as it is delivered).
    if (message.length > this.config.maxDownlinkSize && route.kind !== 'raw') {
      this.out.drop('too_large')
      this.throttle.warn('message_too_large', 'message from the broker dropped unread', {
        topic,
        bytes: message.length,
        reason: `over the ${this.config.maxDownlinkSize}-byte downlink limit`,
      })
      return undefined
    }
    switch (route.kind) {
      case 'broadcast':
        this.onBroadcast(message, route.trusted)
        return undefined
      case 'down':
        return this.onDownlink(route.device, message, this.peer === undefined)
      case 'held':
        return this.keepFor(route.held, message, this.peer === undefined)
      case 'presence':
        this.onPresence(route.held, message)
        return undefined
      case 'control':
        this.control.onMessage(route.device, message, this.peer === undefined)
        return undefined
      case 'peer': // from another gateway: a takeover notice, or a device's message
        if (isAction(message)) this.control.onMessage(route.device, message, true)
        else return this.onDownlink(route.device, message, true)
        return undefined
      case 'heldPeer': // a takeover of a device not here concerns nobody here
        return isAction(message) ? undefined : this.keepFor(route.held, message, true)
      case 'raw': // [HT-5.6] the message's bytes are the frame's body
        this.out.deliver(route.device.session, route.type, message)
        return undefined
    }
  }

  /** [HT-5.2] A message on a device's down topic (or, from a gateway, its peer topic). */
  private onDownlink(device: Attached, message: Buffer, trusted: boolean): AckLater | undefined {
    const downlink = this.out.read(device.session.deviceId!, message, trusted)
    if (downlink === undefined) return undefined
    const session = device.session
    if (this.downlinks === undefined || !this.held.has(session.deviceId!)) {
      this.out.deliver(session, Cmd.JSON_MESSAGE, downlink.body, downlink.payload)
      return undefined
    }
    if (!this.out.withinLimits(session, downlink.body, downlink.payload)) return undefined
    if (!this.downlinks.atLeastOnce) {
      // At most once: kept only when it cannot be sent now (not reading, not online yet).
      const result = session.deliver(Cmd.JSON_MESSAGE, downlink.body, downlink.payload)
      if (isSettled(result)) {
        this.out.count(session, result)
        return undefined
      }
    }
    // At least once: kept first, so that nothing is lost if it is not acknowledged.
    const kept = this.downlinks.keep(session.deviceId!, downlink.body)
    this.out.countKept(session, this.downlinks.send(session, kept))
    return this.downlinks.ackLater
  }

  /** A message for a held device that is not here: kept for its next login. */
  private keepFor(held: Held, message: Buffer, trusted: boolean): AckLater | undefined {
    const downlink = this.out.read(held.deviceId, message, trusted)
    if (downlink === undefined) return undefined
    this.downlinks!.keep(held.deviceId, downlink.body)
    return this.downlinks!.ackLater
  }

  /** [HT-3.6] The device acknowledged a frame: a kept message it carried leaves the store. */
  acknowledged(session: Session, msgId: number): void {
    this.downlinks?.acknowledged(session, msgId)
  }

  /** Logged in: what was kept for the device goes first, in order. */
  loggedIn(session: Session): void {
    if (this.downlinks === undefined || this.attached(session) === undefined) return
    this.downlinks.replay(session, session.deviceId!, (result) => this.out.countKept(session, result))
  }

  /** [HT-5.3] To every device here except the sender. The body is shared, not copied per device. */
  private onBroadcast(message: Buffer, trusted: boolean): void {
    if (!this.broadcastsIn.take(Date.now())) {
      this.out.drop('broadcast_rate')
      this.throttle.warn('broadcast_rate_down', 'broadcast from the broker dropped: over broadcastRate', {
        rate: this.config.broadcastRate,
        bytes: message.length,
      })
      return
    }
    const downlink = this.out.readBroadcast(message, trusted)
    if (downlink === undefined) return
    const body = typeof downlink.body === 'string' ? Buffer.from(downlink.body) : downlink.body
    for (const [id, device] of this.devices) {
      if (id !== downlink.from) this.out.deliver(device.session, Cmd.BROADCAST, body, downlink.payload)
    }
  }

  /** The sessions of the devices logged in here (for the admin API). */
  online(): Session[]
  /** The device `deviceId`'s session, if it is logged in here. */
  online(deviceId: string): Session | undefined
  online(deviceId?: string): Session[] | Session | undefined {
    if (deviceId !== undefined) {
      const session = this.devices.get(deviceId)?.session
      return session?.state === 'online' ? session : undefined
    }
    const out: Session[] = []
    for (const device of this.devices.values())
      if (device.session.state === 'online') out.push(device.session)
    return out
  }

  /** Closes a device logged in here (reason `kicked`); false if there is none. */
  kick(deviceId: string, by: string): boolean {
    const device = this.devices.get(deviceId)
    if (device === undefined || device.session.state !== 'online') return false
    device.session.logger.info(`kicked via ${by}`)
    device.session.close('kicked')
    return true
  }

  /**
   * Publishes a message for a device on its down topic, as from `server`, at the direct QoS: it
   * reaches the device whichever instance holds it ([HT-5.2]). `payloadJson` must be JSON.
   */
  sendFromServer(deviceId: string, payloadJson: string): Promise<void> {
    const topic = this.templates.down.render({ c: deviceId, u: this.registry.usernameOf(deviceId) })
    const { mqtt } = this.laneOf(deviceId)
    return this.call((done) =>
      this.publish(
        mqtt,
        topic,
        `{"from":"server","payload":${payloadJson}}`,
        this.config.qos.direct,
        false,
        done,
      ),
    )
  }

  /** Resolves once every publish handed to the broker has settled, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.pending === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.drainWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /** Stops per-device unsubscribes: the whole connection is about to close. */
  beginShutdown(): void {
    this.closing = true
    this.control.stop()
  }
}

function noop(): void {}

function notConnected(): GatewayError {
  return new GatewayError('HT_ERR_BROKER_UNREACHABLE', 'not connected to the broker')
}

type RateBudget = { take(now: number): boolean }

/** A token bucket, or no limit at rate 0. */
function rateBudget(rate: number, burst: number): RateBudget {
  return rate > 0 ? new TokenBucket(rate, burst, Date.now()) : { take: () => true }
}

/** What a held device has subscribed: its down, status and (when on) peer topics. */
function heldTopics(held: Held): string[] {
  return held.peer === undefined ? [held.down, held.status] : [held.down, held.status, held.peer]
}

/** The topics subscribed for an attached device; its down (and peer) topic only `withDown`. */
function attachedTopics(device: Attached, withDown: boolean): string[] {
  const topics = withDown ? [device.down, device.control] : [device.control]
  if (withDown && device.peer !== undefined) topics.push(device.peer)
  topics.push(...device.rawDown)
  return topics
}

/** A control message a gateway sent on a peer topic (else it is a device's envelope). */
function isAction(message: Buffer): boolean {
  return message.length > ACTION.length && ACTION.compare(message, 0, ACTION.length) === 0
}
