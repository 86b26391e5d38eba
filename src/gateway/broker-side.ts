import { AedesPort } from '../adapters/aedes-port.js'
import { EmbeddedBroker } from '../adapters/broker.js'
import { BrokerAuth } from '../adapters/broker-auth.js'
import { linksFromConfig } from '../adapters/broker-link/from-config.js'
import type { TlsFiles } from '../adapters/device-listener.js'
import { formatAddress } from '../adapters/listen.js'
import { BrokerAcl } from '../auth/broker-acl.js'
import type { BrokerConnection } from '../bridge/port.js'
import { redactUrl } from '../config/redact.js'
import { DEFAULT_MQTT_CONNECTIONS, type GatewayConfig } from '../config/settings.js'
import type { IpGuard } from '../limits/ip-guard.js'
import type { Logger } from '../log.js'
import { gatewayStatusTopic } from '../protocol/topics.js'
import { bump, type GatewayStats } from '../stats.js'

/**
 * The broker side of the gateway ([HT-6.1], [HT-6.2]): the embedded Aedes broker, used in-process,
 * when no `mqttUrl` is given, else the connections to the external broker. It also speaks for the
 * gateway itself: its retained status, online at every (re)connection of the first connection (the
 * one with the last will), offline at a clean stop.
 */
export class BrokerSide {
  /** The bridge's connections: one for the embedded broker, `mqttConnections` for an external one. */
  readonly ports: readonly BrokerConnection[]
  /** The embedded broker, when it runs. */
  readonly embedded: EmbeddedBroker | undefined
  /** Where MQTT clients reach the broker: the (first) external URL, or the embedded broker's TCP port. */
  readonly url: string
  private readonly statusTopic: string

  private constructor(
    private readonly config: GatewayConfig,
    private readonly logger: Logger,
    ports: BrokerConnection[],
    embedded: EmbeddedBroker | undefined,
  ) {
    this.ports = ports
    this.embedded = embedded
    this.url = embedded
      ? `mqtt://${formatAddress(loopbackFor(embedded.tcp.address), embedded.tcp.port)}`
      : config.mqttUrl![0]!
    this.statusTopic = gatewayStatusTopic(config.topics.gatewayStatus, config.gatewayId)
  }

  /** Starts the embedded broker, or the connections to the external one (they connect in the background). */
  static async open(
    config: GatewayConfig,
    logger: Logger,
    stats: GatewayStats,
    guard?: IpGuard,
  ): Promise<BrokerSide> {
    if (config.mqttUrl !== null) {
      return new BrokerSide(
        config,
        logger,
        linksFromConfig(config, logger, () => {
          stats.dropped++
          bump(stats.droppedBy, 'oversize')
        }),
        undefined,
      )
    }
    const { embedded, auth } = await startEmbeddedBroker(config, logger, guard)
    if (config.mqttConnections !== DEFAULT_MQTT_CONNECTIONS)
      logger.warn('mqttConnections applies to an external broker: the embedded one is used in-process')
    // Standalone: the bridge talks to the embedded broker in-process, no MQTT client at all.
    return new BrokerSide(config, logger, [new AedesPort(embedded.aedes, auth)], embedded)
  }

  /** Whether every connection is up right now. */
  get connected(): boolean {
    return this.ports.every((port) => port.connected)
  }

  /**
   * Runs `restore(i)` at every (re)connection of connection i, after publishing the gateway's
   * online status from the first.
   */
  onConnect(restore: (index: number) => void): void {
    this.ports.forEach((port, i) => {
      port.onConnect(() => {
        if (i === 0) this.publishStatus({ online: true, at: Date.now() }, () => {})
        restore(i)
      })
    })
  }

  /** Waits for every connection, up to `mqttConnectTimeout`; says so either way. */
  async waitConnected(): Promise<boolean> {
    const timeout = this.config.mqttConnectTimeout * 1000
    const up = (await Promise.all(this.ports.map((port) => port.waitConnected(timeout)))).every(Boolean)
    if (this.embedded) return up
    if (up)
      this.logger.info(`connected to MQTT broker ${redactUrl(this.url)}`, { connections: this.ports.length })
    else {
      // The connections keep trying in the background: logins are refused with SERVER_ERROR meanwhile.
      this.logger.error(
        `MQTT broker ${redactUrl(this.url)} not reachable yet; devices cannot log in until it is`,
      )
    }
    return up
  }

  /** [HT-5.4] The gateway's offline status (a clean stop); resolves when confirmed or after `timeoutMs`. */
  announceStop(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      setTimeout(resolve, timeoutMs).unref()
      this.publishStatus({ online: false, at: Date.now(), reason: 'shutdown' }, () => resolve())
    })
  }

  /** New TLS certificate and key for the embedded broker's MQTT-over-TLS listener. */
  reloadTls(config: GatewayConfig): void {
    this.embedded?.reloadTls(tlsFiles(config))
  }

  /**
   * Closes the connections, waiting up to `timeoutMs` for what they still carry, then the embedded
   * broker (last: the gateway's own publishes go through it).
   */
  async close(timeoutMs: number): Promise<void> {
    await Promise.all(this.ports.map((port) => port.end(timeoutMs)))
    await this.embedded?.close()
  }

  private publishStatus(state: object, done: () => void): void {
    const payload = JSON.stringify({ ...state, gateway: this.config.gatewayId })
    this.ports[0]!.publish(this.statusTopic, payload, { qos: 1, retain: true }, () => done())
  }
}

/**
 * The embedded Aedes broker with its users and ACL ([HT-6.1]): the gateway's own in standalone
 * mode, and the primary's with `workers`, which its workers reach over loopback MQTT.
 */
export async function startEmbeddedBroker(
  config: GatewayConfig,
  logger: Logger,
  guard?: IpGuard,
): Promise<{ embedded: EmbeddedBroker; auth: BrokerAuth }> {
  const acl = new BrokerAcl(config.topics, config.customCommands)
  const brokerLogger = logger.child({ component: 'broker' })
  const auth = new BrokerAuth({
    users: config.brokerUsers,
    anonymousRole: config.anonymousRole,
    acl,
    maxDownlinkSize: config.maxDownlinkSize,
    ...(guard ? { guard } : {}),
    logger: brokerLogger,
  })
  const embedded = await EmbeddedBroker.start({
    host: config.brokerHost,
    port: config.brokerPort,
    wsPort: config.brokerWsPort,
    tlsPort: config.brokerTlsPort,
    tls: tlsFiles(config),
    auth,
    ...(guard ? { guard } : {}),
    maxMessageSize: config.maxBrokerMessageSize,
    maxConnections: config.maxBrokerConnections,
    retained: {
      maxMessages: config.maxRetainedMessages,
      maxBytes: config.maxRetainedBytes,
      exempt: (topic) => acl.is(topic, 'status') || acl.is(topic, 'gatewayStatus'),
    },
    wsOrigins: brokerWsOrigins(config),
    connectTimeoutMs: config.brokerConnectTimeout * 1000,
    logger: brokerLogger,
  })
  return { embedded, auth }
}

/** The TLS files of the listeners (devices' HyperTCP over TLS, the embedded broker's MQTTS). */
export function tlsFiles(c: GatewayConfig): TlsFiles {
  return { cert: c.tlsCert, key: c.tlsKey, ca: c.tlsCa, clientAuth: c.tlsClientAuth }
}

/** Where a local client reaches a server bound to `host` (a wildcard address means loopback). */
export function loopbackFor(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}

/** `brokerWsOrigins`, and the admin listener's own, where the dashboard is served. */
function brokerWsOrigins(config: GatewayConfig): string[] {
  const own =
    config.adminPort === 'off' || config.adminPort === 0
      ? []
      : [
          `http://${formatAddress(config.adminHost, config.adminPort)}`,
          `http://localhost:${config.adminPort}`,
        ]
  return [...config.brokerWsOrigins, ...own]
}
