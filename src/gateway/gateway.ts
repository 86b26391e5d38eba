import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { GatewayMetrics, type MetricsSource } from '../adapters/admin/metrics.js'
import { type AdminBackend, AdminServer } from '../adapters/admin/server.js'
import { AuthHook } from '../adapters/auth-hook.js'
import { createLogger } from '../adapters/logger.js'
import { DeviceRegistry } from '../auth/registry.js'
import { Bridge } from '../bridge/bridge.js'
import type { Share } from '../bridge/lanes.js'
import { type ConfigInput, resolveConfig } from '../config/resolve.js'
import { type GatewayConfig, SETTINGS, type Setting } from '../config/settings.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { Session, type SessionOptions } from '../session/session.js'
import { createStats, type GatewayStats } from '../stats.js'
import { adminBackend } from './admin-backend.js'
import { Admission } from './admission.js'
import { BrokerSide } from './broker-side.js'
import { DeviceListeners } from './listeners.js'
import { checkDataDir, type Delivery, openDelivery } from './store.js'

/** Options of a {@link Gateway}: any setting (docs/CONFIGURATION.md), plus an injected logger. */
export type GatewayOptions = ConfigInput & {
  /** Use this logger instead of creating one from `logLevel`/`logFormat`. */
  logger?: Logger
  /** Worker `index` of `count` (`workers`): which devices not seen yet it keeps for. */
  share?: Share
}

export interface ShutdownResult {
  /** Everything the devices had sent was acknowledged by the broker before the deadline. */
  readonly acknowledged: boolean
}

/** Settings `reload` applies (the registry, and those marked `reload`); every other change needs a restart. */
const RELOADABLE = new Set<string>([
  'devices',
  ...Object.entries(SETTINGS)
    .filter(([, s]) => (s as Setting<unknown>).reload)
    .map(([k]) => k),
])

/**
 * A gateway ([HT-6]): the broker side (embedded broker, or connections to an external one), the
 * bridge between devices and MQTT, admission, and the HyperTCP listeners. The constructor checks
 * the configuration and wires the parts; {@link start} opens them, {@link close} stops them in
 * order. Policy lives in the parts (broker-side.ts, admission.ts, the bridge, the sessions).
 *
 * ```ts
 * const gw = await new Gateway({ port: 8080, devices: [{ id: 'sensor-1', token: 's3cret' }] }).start()
 * ```
 */
export class Gateway {
  readonly config: GatewayConfig
  readonly logger: Logger
  private readonly counters: GatewayStats = createStats()
  private registry: DeviceRegistry
  private readonly admission: Admission
  private readonly sessions = new Set<Session>()
  private broker: BrokerSide | undefined
  private bridge: Bridge | undefined
  private listener: DeviceListeners | undefined
  private admin: AdminServer | undefined
  private delivery: Delivery | undefined
  private nextSession = 0
  private readonly share: GatewayOptions['share']
  private closing: Promise<ShutdownResult> | undefined

  /** Checks the settings (a ConfigError names the key) and wires the parts; nothing is opened yet. */
  constructor(options: GatewayOptions = {}) {
    const { logger, share, ...settings } = options
    this.share = share
    this.config = resolveConfig([{ source: 'options', values: settings }])
    this.logger = logger ?? createLogger(this.config.logLevel, this.config.logFormat)
    this.registry = new DeviceRegistry(this.config.devices)
    this.admission = new Admission(this.config, this.logger, () => this.sessions.size)
  }

  /**
   * Opens the broker side, the bridge and the listeners. A port that cannot be bound rejects with
   * GatewayError `HT_ERR_LISTEN` (and what was opened is closed again). An external broker that is
   * not reachable yet does not: the gateway keeps trying, and refuses logins meanwhile.
   */
  async start(): Promise<this> {
    if (this.broker !== undefined)
      throw new GatewayError('HT_ERR_INTERNAL', 'the gateway was started already')
    const { config, logger } = this
    if (this.registry.size === 0 && config.authUrl === null)
      logger.warn('the device registry is empty and there is no authUrl: every login will be refused')
    const broker = await BrokerSide.open(config, logger, this.counters, this.admission.guard)
    this.broker = broker
    // One process: dataDir's own store (a primary checks its workers' before they start).
    if (this.share === undefined) checkDataDir(config, 1, logger)
    // Loaded in the same turn as the bridge is made: before any message from the broker is read.
    const delivery = openDelivery(config, logger, this.counters)
    this.delivery = delivery
    const externalAuth =
      config.authUrl === null
        ? undefined
        : new AuthHook({
            url: config.authUrl,
            gatewayId: config.gatewayId,
            timeoutMs: config.authTimeout * 1000,
            cacheTtlMs: config.authCacheTtl * 1000,
            concurrency: config.authConcurrency,
            logger: logger.child({ component: 'auth' }),
          })
    const bridge = new Bridge({
      config,
      mqtt: broker.ports,
      registry: this.registry,
      logger,
      stats: this.counters,
      ...(externalAuth ? { externalAuth } : {}),
      ...(delivery ? { downlinks: delivery.downlinks } : {}),
      ...(this.share ? { share: this.share } : {}),
    })
    this.bridge = bridge
    broker.onConnect((i) => bridge.restore(i))
    const listener = new DeviceListeners(
      config,
      this.admission,
      this.counters,
      logger,
      () => this.sessions.size,
      (socket, options) => this.accept(socket, options),
      this.share,
    )
    this.listener = listener
    try {
      // The broadcast subscription, made by the first connection (restore above).
      const subscribed = bridge.start()
      if (await broker.waitConnected()) await subscribed
      else
        subscribed.catch((err: Error) =>
          logger.debug('broadcast subscription not made yet', { error: err.message }),
        )
      await listener.listen()
      if (config.adminPort !== 'off') {
        const backend = this.adminBackend()
        const { adminHost: host, adminPort: port, adminToken: token } = config
        const metrics = new GatewayMetrics(backend)
        this.admin = await AdminServer.start({ host, port, token, backend, metrics, logger })
      }
    } catch (err) {
      this.admission.drain()
      await listener.close()
      await broker.close(0)
      delivery?.close()
      throw err
    }
    logger.info('gateway started', {
      gateway: config.gatewayId,
      devices: this.registry.size,
      maxConnections: this.admission.maxConnections,
    })
    return this
  }

  /** The HyperTCP port actually bound (useful with `port: 0`); the TLS port when plain TCP is off. */
  get port(): number {
    const a = this.opened().listener.addresses('hypertcp')
    return (a?.plain ?? a?.tls)?.port ?? 0
  }

  /** The HyperTCP-over-TLS port, when that listener runs. */
  get tlsPort(): number | undefined {
    return this.opened().listener.addresses('hypertcp')?.tls?.port
  }

  /** The Blynk port (the TLS one when plain TCP is off), when a Blynk listener runs. */
  get blynkPort(): number | undefined {
    const a = this.opened().listener.addresses('blynk')
    return (a?.plain ?? a?.tls)?.port
  }

  /** The broker the gateway publishes to: the (first) external one, or `mqtt://host:port` of the embedded one. */
  get mqttUrl(): string {
    return this.opened().broker.url
  }

  /** The admin listener's port, when it runs. */
  get adminPort(): number | undefined {
    return this.admin?.address.port
  }

  /** What the admin listener sees and may do here (a worker's: what its primary's asks it). */
  adminBackend(): AdminBackend & MetricsSource {
    const { broker, bridge, listener } = this.opened()
    return adminBackend(this, broker, bridge, listener)
  }

  /** Whether a stop has begun. */
  get stopping(): boolean {
    return this.closing !== undefined
  }

  /** Whether the HyperTCP listeners are bound. */
  get listening(): boolean {
    return this.listener?.listening ?? false
  }

  /** The embedded broker's bound ports, when it runs. */
  get brokerPort(): number | undefined {
    return this.broker?.embedded?.tcp.port
  }

  get brokerWsPort(): number | undefined {
    return this.broker?.embedded?.ws?.port
  }

  get brokerTlsPort(): number | undefined {
    return this.broker?.embedded?.tls?.port
  }

  /** Whether the gateway's connections to the broker are all up right now (for health checks). */
  get mqttConnected(): boolean {
    return this.broker?.connected ?? false
  }

  stats(): GatewayStats {
    this.counters.open = this.sessions.size
    this.delivery?.gauge(this.counters)
    return this.counters
  }

  /**
   * Applies what can change without a restart: the device registry (connected devices whose token
   * was revoked are closed, reason `kicked`) and the TLS certificates (re-read from their files;
   * connected devices keep their session). Returns the settings that need a restart.
   */
  reload(next: GatewayConfig): { kicked: number; needsRestart: string[] } {
    const { bridge, listener, broker } = this.opened()
    const current = this.config as unknown as Record<string, unknown>
    const changed = Object.keys(next).filter(
      (k) => JSON.stringify(next[k as keyof GatewayConfig]) !== JSON.stringify(current[k]),
    )
    const needsRestart = changed.filter((k) => !RELOADABLE.has(k))
    this.registry = new DeviceRegistry(next.devices)
    const kicked = bridge.replaceRegistry(this.registry)
    listener.reloadTls(next)
    broker.reloadTls(next)
    for (const k of changed) if (RELOADABLE.has(k)) current[k] = next[k as keyof GatewayConfig]
    this.logger.info('reloaded', { devices: this.registry.size, kicked })
    if (needsRestart.length > 0)
      this.logger.warn('some changed settings need a restart to apply', { settings: needsRestart })
    return { kicked, needsRestart }
  }

  /**
   * Graceful shutdown, within `shutdownTimeout`: stop accepting and reading, get what devices
   * already sent acknowledged by the broker, close them (presence offline, reason `shutdown`),
   * publish the gateway offline, disconnect from the broker, close the embedded broker last.
   * Resolves `{ acknowledged: false }` when the deadline came first. Idempotent.
   */
  close(): Promise<ShutdownResult> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<ShutdownResult> {
    const { bridge, listener, broker } = this.opened()
    const { logger, config, sessions } = this
    logger.info('shutting down', { devices: bridge.size, connections: sessions.size })
    // Every wait below shares one deadline: a broker that never answers cannot hold the stop.
    const deadline = performance.now() + config.shutdownTimeout * 1000
    const left = () => Math.max(0, deadline - performance.now())
    this.admission.drain()
    const listenersClosed = listener.close()
    for (const session of sessions) session.stopReading()
    // What devices sent is published and acknowledged (the answers reach them).
    const acknowledged = await bridge.drain(left())
    bridge.beginShutdown()
    for (const session of [...sessions]) session.close('shutdown')
    await bridge.drain(left()) // offline presence
    await broker.announceStop(left())
    await broker.close(left())
    this.delivery?.close() // after the broker: nothing more can be kept
    for (const session of sessions) session.socket.destroy()
    await listenersClosed
    await this.admin?.close()
    if (!acknowledged) {
      logger.error(
        'shutdown: what devices sent was not all acknowledged by the broker within shutdownTimeout ' +
          `(${config.shutdownTimeout} s); the devices were not told success for it and will send it again`,
      )
    }
    logger.info('stopped', { stats: { ...this.counters } })
    return { acknowledged }
  }

  private accept(socket: Socket, options: SessionOptions): Session {
    this.counters.connections++
    socket.setNoDelay(true) // writes are batched per event-loop turn already
    const id = `${this.config.gatewayId}-${++this.nextSession}`
    const session = new Session(id, socket, options, this.bridge!, this.logger, this.counters)
    this.sessions.add(session)
    socket.once('close', () => this.sessions.delete(session))
    return session
  }

  private opened(): { broker: BrokerSide; bridge: Bridge; listener: DeviceListeners } {
    if (this.broker === undefined || this.bridge === undefined || this.listener === undefined)
      throw new GatewayError('HT_ERR_INTERNAL', 'the gateway is not started')
    return { broker: this.broker, bridge: this.bridge, listener: this.listener }
  }
}

/** `new Gateway(options).start()`: a started gateway. */
export function createGateway(options: GatewayOptions = {}): Promise<Gateway> {
  return new Gateway(options).start()
}
