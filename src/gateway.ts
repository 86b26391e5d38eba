import { randomBytes } from 'node:crypto'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { EmbeddedBroker } from './adapters/broker.js'
import { formatAddress, listenOn } from './adapters/listen.js'
import { createLogger } from './adapters/logger.js'
import { MqttClientPort, redact } from './adapters/mqtt-client.js'
import { DeviceRegistry } from './auth/registry.js'
import { Bridge } from './bridge/bridge.js'
import { gatewayStatusTopic } from './bridge/topics.js'
import { type ConfigInput, resolveConfig } from './config/resolve.js'
import type { GatewayConfig } from './config/schema.js'
import type { Logger } from './log.js'
import { Session, type SessionOptions } from './session/session.js'
import { createStats, type GatewayStats } from './stats.js'

/** Options of {@link createGateway}: any config setting, plus an injected logger. */
export type GatewayOptions = ConfigInput & {
  /** Use this logger instead of creating one from `logLevel`/`logFormat`. */
  logger?: Logger
}

export interface Gateway {
  readonly config: GatewayConfig
  /** The HyperTCP port actually bound (useful with `port: 0`). */
  readonly port: number
  /** The broker the gateway publishes to: the external one, or `mqtt://host:port` of the embedded one. */
  readonly mqttUrl: string
  /** The embedded broker's bound ports, when it runs. */
  readonly brokerPort: number | undefined
  readonly brokerWsPort: number | undefined
  /** Whether the gateway's connection to the broker is up right now (for health checks). */
  readonly mqttConnected: boolean
  stats(): GatewayStats
  /**
   * Graceful shutdown: stop accepting, finish and acknowledge what devices already sent, close
   * them (presence offline, reason `shutdown`), publish the gateway offline, disconnect from the
   * broker, close the embedded broker last. Idempotent.
   */
  close(): Promise<void>
}

/** How long the first broker connection is awaited at start-up before carrying on (and retrying). */
const FIRST_CONNECT_MS = 10_000
/** How long shutdown waits for the broker to confirm what is pending. */
const DRAIN_MS = 5_000

/**
 * Starts a gateway ([HT-6]): the embedded broker unless `mqttUrl` is given, the MQTT
 * connection, the bridge, and the HyperTCP listener. Config errors throw a ConfigError naming
 * the key; a port that cannot be bound throws GatewayError `HT_ERR_LISTEN`.
 */
export async function createGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const { logger: injected, ...settings } = options
  const config = resolveConfig([{ source: 'options', values: settings }])
  const logger = injected ?? createLogger(config.logLevel, config.logFormat)
  const stats = createStats()
  const registry = new DeviceRegistry(config.devices)
  if (registry.size === 0) logger.warn('the device registry is empty: every login will be refused')

  let broker: EmbeddedBroker | undefined
  let mqttUrl = config.mqttUrl
  if (mqttUrl === null) {
    broker = await EmbeddedBroker.start({
      host: config.brokerHost,
      port: config.brokerPort,
      wsPort: config.brokerWsPort,
      logger: logger.child({ component: 'broker' }),
    })
    logger.info(`embedded MQTT broker listening on ${formatAddress(broker.tcp.address, broker.tcp.port)}`)
    if (broker.ws) {
      logger.info(
        `embedded MQTT-over-WebSocket listening on ${formatAddress(broker.ws.address, broker.ws.port)}`,
      )
    }
    mqttUrl = `mqtt://${formatAddress(loopbackFor(broker.tcp.address), broker.tcp.port)}`
  }

  const gatewayStatus = (state: object) => JSON.stringify({ ...state, gateway: config.gatewayId })
  let mqtt: MqttClientPort
  let bridge: Bridge
  try {
    const statusTopic = gatewayStatusTopic(config.topics.gatewayStatus, config.gatewayId)
    mqtt = new MqttClientPort({
      url: mqttUrl,
      username: config.mqttUsername,
      password: config.mqttPassword,
      clientId: config.mqttClientId ?? `hypertcp-gw-${config.gatewayId}-${randomBytes(3).toString('hex')}`,
      ca: config.mqttCa,
      cert: config.mqttCert,
      key: config.mqttKey,
      rejectUnauthorized: config.mqttRejectUnauthorized,
      reconnectPeriodMs: config.mqttReconnectPeriod * 1000,
      will: { topic: statusTopic, payload: gatewayStatus({ online: false, reason: 'connection_lost' }) },
      logger: logger.child({ component: 'mqtt' }),
    })
    bridge = new Bridge({ config, mqtt, registry, logger, stats })
    let connections = 0
    mqtt.onConnect(() => {
      // [HT-5.4] The gateway's own retained status, on every (re)connection.
      mqtt.publish(
        bridge.gatewayStatusTopic,
        gatewayStatus({ online: true, at: Date.now() }),
        { qos: 1, retain: true },
        () => {},
      )
      if (++connections > 1) bridge.restore()
    })
    // Subscribes as soon as there is a connection (MQTT.js queues it until then).
    const started = bridge.start()
    if (await mqtt.waitConnected(FIRST_CONNECT_MS)) {
      logger.info(`connected to MQTT broker ${redact(mqttUrl)}`)
      await started
    } else {
      // Keep retrying in the background: logins are refused with SERVER_ERROR meanwhile.
      logger.error(`MQTT broker ${redact(mqttUrl)} not reachable yet; devices cannot log in until it is`)
      started.catch((err: Error) => logger.error('broadcast subscription failed', { error: err.message }))
    }
  } catch (err) {
    await broker?.close()
    throw err
  }

  const sessions = new Set<Session>()
  const sessionOptions: SessionOptions = {
    maxFrameSize: config.maxFrameSize,
    maxDownlinkSize: config.maxDownlinkSize,
    loginTimeoutMs: config.loginTimeout * 1000,
    keepaliveMs: config.keepalive * 1000,
    maxInflight: config.maxInflight,
    maxWriteQueue: config.maxWriteQueue,
  }
  const prefix = `${config.gatewayId}-`
  let nextSession = 0
  const server: Server = createServer((socket: Socket) => {
    stats.connections++
    socket.setNoDelay(true) // writes are batched per event-loop turn already
    const session = new Session(`${prefix}${++nextSession}`, socket, sessionOptions, bridge, logger, stats)
    sessions.add(session)
    socket.once('close', () => sessions.delete(session))
  })
  server.on('error', (err: NodeJS.ErrnoException) => {
    // e.g. EMFILE on accept: the listener keeps running, the error is reported.
    logger.error('HyperTCP listener error', { code: err.code, error: err.message })
  })
  try {
    await listenOn(server, config.host, config.port, 'HyperTCP listener')
  } catch (err) {
    await mqtt.end(true)
    await broker?.close()
    throw err
  }
  const address = server.address() as AddressInfo
  logger.info(`HyperTCP listening on ${formatAddress(address.address, address.port)}`, {
    gateway: config.gatewayId,
    devices: registry.size,
  })

  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    logger.info('shutting down', { devices: bridge.size, connections: sessions.size })
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const session of sessions) session.stopReading()
    await bridge.drain(DRAIN_MS) // what devices sent is published and acknowledged
    bridge.beginShutdown()
    for (const session of [...sessions]) session.close('shutdown')
    const drained = await bridge.drain(DRAIN_MS) // offline presence
    if (!drained) logger.warn('shutdown: some publishes were not confirmed by the broker in time')
    await new Promise<void>((resolve) => {
      mqtt.publish(
        bridge.gatewayStatusTopic,
        gatewayStatus({ online: false, at: Date.now(), reason: 'shutdown' }),
        { qos: 1, retain: true },
        () => resolve(),
      )
      setTimeout(resolve, DRAIN_MS).unref()
    })
    await mqtt.end()
    for (const session of sessions) session.socket.destroy()
    await serverClosed
    await broker?.close()
    logger.info('stopped', { stats: { ...stats } })
  }

  return {
    config,
    port: address.port,
    mqttUrl,
    brokerPort: broker?.tcp.port,
    brokerWsPort: broker?.ws?.port,
    get mqttConnected() {
      return mqtt.connected
    },
    stats: () => stats,
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
