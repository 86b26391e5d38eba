import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { AedesPort } from './adapters/aedes-port.js'
import { EmbeddedBroker } from './adapters/broker.js'
import { linksFromConfig } from './adapters/broker-link/from-config.js'
import { redact } from './adapters/broker-link/link.js'
import { DeviceListener, type TlsFiles } from './adapters/device-listener.js'
import { openFilesLimit } from './adapters/fd-limit.js'
import { formatAddress } from './adapters/listen.js'
import { createLogger } from './adapters/logger.js'
import { DeviceRegistry } from './auth/registry.js'
import { Bridge } from './bridge/bridge.js'
import type { BrokerConnection } from './bridge/port.js'
import { parseHostPort } from './config/kinds.js'
import { type ConfigInput, resolveConfig } from './config/resolve.js'
import { DEFAULT_MQTT_CONNECTIONS, type GatewayConfig, SETTINGS, type Setting } from './config/settings.js'
import { IpGuard } from './limits/ip-guard.js'
import { type Logger, LogThrottle } from './log.js'
import { Status } from './protocol/constants.js'
import { Session, type SessionOptions } from './session/session.js'
import type { Gatekeeper, LoginGate } from './session/types.js'
import { WriteBatcher } from './session/write-batcher.js'
import { createStats, type GatewayStats } from './stats.js'

/** Options of {@link createGateway}: any config setting, plus an injected logger. */
export type GatewayOptions = ConfigInput & {
  /** Use this logger instead of creating one from `logLevel`/`logFormat`. */
  logger?: Logger
}

export interface Gateway {
  readonly config: GatewayConfig
  /** The HyperTCP port actually bound (useful with `port: 0`); the TLS port when plain TCP is off. */
  readonly port: number
  /** The HyperTCP-over-TLS port, when that listener runs. */
  readonly tlsPort: number | undefined
  /** The broker the gateway publishes to: the (first) external one, or `mqtt://host:port` of the embedded one. */
  readonly mqttUrl: string
  /** The embedded broker's bound ports, when it runs. */
  readonly brokerPort: number | undefined
  readonly brokerWsPort: number | undefined
  readonly brokerTlsPort: number | undefined
  /** Whether the gateway's connections to the broker are all up right now (for health checks). */
  readonly mqttConnected: boolean
  stats(): GatewayStats
  /**
   * Applies what can change without a restart: the device registry (connected devices whose
   * token was revoked are closed, reason `kicked`) and the TLS certificates (re-read from their
   * files; connected devices keep their session). Returns the settings that need a restart.
   */
  reload(config: GatewayConfig): { kicked: number; needsRestart: string[] }
  /**
   * Graceful shutdown, within `shutdownTimeout`: stop accepting and reading, get what devices
   * already sent acknowledged by the broker, close them (presence offline, reason `shutdown`),
   * publish the gateway offline, disconnect from the broker, close the embedded broker last.
   * Resolves `{ acknowledged: false }` when the deadline came first. Idempotent.
   */
  close(): Promise<ShutdownResult>
}

export interface ShutdownResult {
  /** Everything the devices had sent was acknowledged by the broker before the deadline. */
  readonly acknowledged: boolean
}

/** How often forgotten per-IP state is swept. */
const SWEEP_MS = 30_000

const PROCEED: LoginGate = { action: 'proceed' }

/** Settings `reload` applies (the registry, and those marked `reload`); every other change needs a restart. */
const RELOADABLE = new Set<string>([
  'devices',
  ...Object.entries(SETTINGS)
    .filter(([, s]) => (s as Setting<unknown>).reload)
    .map(([k]) => k),
])

/**
 * Starts a gateway ([HT-6]): the embedded broker unless `mqttUrl` is given, the MQTT
 * connection, the bridge, and the HyperTCP listeners. Config errors throw a ConfigError naming
 * the key; a port that cannot be bound throws GatewayError `HT_ERR_LISTEN`.
 */
export async function createGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const { logger: injected, ...settings } = options
  const config = resolveConfig([{ source: 'options', values: settings }])
  const logger = injected ?? createLogger(config.logLevel, config.logFormat)
  const stats = createStats()
  let registry = new DeviceRegistry(config.devices)
  if (registry.size === 0) logger.warn('the device registry is empty: every login will be refused')
  const tlsFiles = (c: GatewayConfig): TlsFiles => ({
    cert: c.tlsCert,
    key: c.tlsKey,
    ca: c.tlsCa,
    clientAuth: c.tlsClientAuth,
  })

  let broker: EmbeddedBroker | undefined
  let mqttUrl = config.mqttUrl?.[0] ?? null
  if (mqttUrl === null) {
    broker = await EmbeddedBroker.start({
      host: config.brokerHost,
      port: config.brokerPort,
      wsPort: config.brokerWsPort,
      tlsPort: config.brokerTlsPort,
      tls: tlsFiles(config),
      users:
        config.brokerUsername === null
          ? null
          : { username: config.brokerUsername, password: config.brokerPassword! },
      logger: logger.child({ component: 'broker' }),
    })
    mqttUrl = `mqtt://${formatAddress(loopbackFor(broker.tcp.address), broker.tcp.port)}`
  }

  const gatewayStatus = (state: object) => JSON.stringify({ ...state, gateway: config.gatewayId })
  let ports: BrokerConnection[] = []
  let bridge: Bridge
  try {
    if (broker) {
      // Standalone: the bridge talks to the embedded broker in-process, no MQTT client at all.
      ports = [new AedesPort(broker.aedes)]
      if (config.mqttConnections !== DEFAULT_MQTT_CONNECTIONS)
        logger.warn('mqttConnections applies to an external broker: the embedded one is used in-process')
    } else {
      ports = linksFromConfig(config, logger, () => stats.dropped++)
    }
    bridge = new Bridge({ config, mqtt: ports, registry, logger, stats })
    ports.forEach((port, i) => {
      port.onConnect(() => {
        // [HT-5.4] The gateway's own retained status, on every (re)connection of the first
        // connection (the one with the last will).
        if (i === 0) {
          port.publish(
            bridge.gatewayStatusTopic,
            gatewayStatus({ online: true, at: Date.now() }),
            { qos: 1, retain: true },
            () => {},
          )
        }
        // Subscriptions (the broadcast one at first) and the presence of its devices.
        bridge.restore(i)
      })
    })
    // Made by the first connection (restore above).
    const started = bridge.start()
    const up = await Promise.all(ports.map((port) => port.waitConnected(config.mqttConnectTimeout * 1000)))
    if (up.every(Boolean)) {
      if (!broker) logger.info(`connected to MQTT broker ${redact(mqttUrl)}`, { connections: ports.length })
      await started
    } else {
      // Keep retrying in the background: logins are refused with SERVER_ERROR meanwhile.
      logger.error(`MQTT broker ${redact(mqttUrl)} not reachable yet; devices cannot log in until it is`)
      started.catch((err: Error) =>
        logger.debug('broadcast subscription not made yet', { error: err.message }),
      )
    }
  } catch (err) {
    await Promise.all(ports.map((port) => port.end()))
    await broker?.close()
    throw err
  }

  const guard = new IpGuard({
    connectionRate: config.ipConnectionRate,
    connectionBurst: config.ipConnectionBurst,
    failureLimit: config.loginFailureLimit,
    failureWindowMs: config.loginFailureWindow * 1000,
    banMs: config.loginBanTime * 1000,
    allow: config.allowCidrs,
    deny: config.denyCidrs,
    exempt: config.rateLimitExempt,
    maxTracked: 100_000,
  })
  const sweeper = setInterval(() => guard.sweep(Date.now()), SWEEP_MS)
  sweeper.unref()

  const fdLimit = openFilesLimit()
  const maxConnections =
    config.maxConnections ?? (fdLimit === undefined ? 50_000 : Math.max(100, fdLimit - 300))
  if (fdLimit !== undefined && maxConnections + 64 > fdLimit) {
    logger.warn(
      `maxConnections (${maxConnections}) is above what the open-files limit (${fdLimit}) allows: ` +
        'the OS will drop connections past it silently; raise `ulimit -n` or lower maxConnections',
    )
  }
  const overflow = config.overflowRedirect === null ? undefined : parseHostPort(config.overflowRedirect)!
  const sessions = new Set<Session>()
  let draining = false
  const gatekeeper: Gatekeeper = {
    checkLogin(session) {
      if (guard.isBanned(session.socket.remoteAddress ?? '', Date.now())) {
        return { action: 'refuse', status: Status.QUOTA_LIMIT, reason: 'rate_limited' }
      }
      // [HT-6.4] At the connection limit or draining: a peer takes the device, or it is refused.
      if (draining || sessions.size > maxConnections) {
        if (overflow !== undefined) return { action: 'redirect', server: overflow.host, port: overflow.port }
        return { action: 'refuse', status: Status.QUOTA_LIMIT, reason: 'rate_limited' }
      }
      return PROCEED
    },
    loginFailed(session) {
      const ip = session.socket.remoteAddress ?? ''
      if (guard.loginFailed(ip, Date.now())) {
        logger.warn('address banned after repeated login failures', {
          remote: ip,
          seconds: config.loginBanTime,
        })
      }
    },
  }
  const sessionOptions: SessionOptions = {
    maxFrameSize: config.maxFrameSize,
    maxDownlinkSize: config.maxDownlinkSize,
    loginTimeoutMs: config.loginTimeout * 1000,
    keepaliveMs: config.keepalive * 1000,
    maxInflight: config.maxInflight,
    maxWriteQueue: config.maxWriteQueue,
    drainTimeoutMs: config.drainTimeout * 1000,
    messageRate: config.messageRate,
    messageBurst: config.messageBurst,
    gatekeeper,
    throttle: new LogThrottle(logger),
    batcher: new WriteBatcher(config.ackHoldMs),
  }
  const prefix = `${config.gatewayId}-`
  let nextSession = 0
  const listener = new DeviceListener({
    host: config.host,
    port: config.port,
    tlsPort: config.tlsPort,
    tls: tlsFiles(config),
    handshakeTimeoutMs: config.loginTimeout * 1000,
    maxConnectionRate: config.maxConnectionRate,
    // Above maxConnections, connections are still taken (their LOGIN is redirected or refused
    // with a status); past this margin they are closed at once, to keep file descriptors.
    hardLimit: maxConnections + Math.max(64, Math.ceil(maxConnections / 100)),
    guard,
    stats,
    logger,
    connections: () => sessions.size,
    onConnection(socket: Socket) {
      stats.connections++
      socket.setNoDelay(true) // writes are batched per event-loop turn already
      const session = new Session(`${prefix}${++nextSession}`, socket, sessionOptions, bridge, logger, stats)
      sessions.add(session)
      socket.once('close', () => sessions.delete(session))
    },
  })
  try {
    await listener.listen()
  } catch (err) {
    clearInterval(sweeper)
    await Promise.all(ports.map((port) => port.end()))
    await broker?.close()
    throw err
  }
  logger.info('gateway started', { gateway: config.gatewayId, devices: registry.size, maxConnections })

  let current = config
  const reload = (next: GatewayConfig): { kicked: number; needsRestart: string[] } => {
    const needsRestart = (Object.keys(next) as (keyof GatewayConfig)[]).filter(
      (k) => !RELOADABLE.has(k) && JSON.stringify(next[k]) !== JSON.stringify(current[k]),
    )
    registry = new DeviceRegistry(next.devices)
    const kicked = bridge.replaceRegistry(registry)
    listener.reloadTls(tlsFiles(next))
    broker?.reloadTls(tlsFiles(next))
    current = {
      ...current,
      devices: next.devices,
      tlsCert: next.tlsCert,
      tlsKey: next.tlsKey,
      tlsCa: next.tlsCa,
    }
    logger.info('reloaded', { devices: registry.size, kicked })
    if (needsRestart.length > 0)
      logger.warn('some changed settings need a restart to apply', { settings: needsRestart })
    return { kicked, needsRestart }
  }

  let closing: Promise<ShutdownResult> | undefined
  const close = async (): Promise<ShutdownResult> => {
    logger.info('shutting down', { devices: bridge.size, connections: sessions.size })
    // Every wait below shares one deadline: a broker that never answers cannot hold the stop.
    const deadline = performance.now() + config.shutdownTimeout * 1000
    const left = () => Math.max(0, deadline - performance.now())
    draining = true
    clearInterval(sweeper)
    const listenersClosed = listener.close()
    for (const session of sessions) session.stopReading()
    // What devices sent is published and acknowledged (the answers reach them).
    const acknowledged = await bridge.drain(left())
    bridge.beginShutdown()
    for (const session of [...sessions]) session.close('shutdown')
    await bridge.drain(left()) // offline presence
    await new Promise<void>((resolve) => {
      const offline = gatewayStatus({ online: false, at: Date.now(), reason: 'shutdown' })
      ports[0]!.publish(bridge.gatewayStatusTopic, offline, { qos: 1, retain: true }, () => resolve())
      setTimeout(resolve, left()).unref()
    })
    await Promise.all(ports.map((port) => port.end(left())))
    for (const session of sessions) session.socket.destroy()
    await listenersClosed
    await broker?.close()
    if (!acknowledged) {
      logger.error(
        `shutdown: what devices sent was not all acknowledged by the broker within shutdownTimeout ` +
          `(${config.shutdownTimeout} s); the devices were not told success for it and will send it again`,
      )
    }
    logger.info('stopped', { stats: { ...stats } })
    return { acknowledged }
  }

  const plain = listener.addresses.plain
  const tls = listener.addresses.tls
  return {
    config,
    port: (plain ?? tls)!.port,
    tlsPort: tls?.port,
    mqttUrl,
    brokerPort: broker?.tcp.port,
    brokerWsPort: broker?.ws?.port,
    brokerTlsPort: broker?.tls?.port,
    get mqttConnected() {
      return ports.every((port) => port.connected)
    },
    stats: () => {
      stats.open = sessions.size
      return stats
    },
    reload,
    close: () => {
      closing ??= close()
      return closing
    },
  }
}

/** Where a local client reaches a server bound to `host` (a wildcard address means loopback). */
function loopbackFor(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}
