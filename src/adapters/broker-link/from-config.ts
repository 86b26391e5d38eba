import { readFileSync } from 'node:fs'
import { BrokerAcl } from '../../auth/broker-acl.js'
import type { GatewayConfig } from '../../config/settings.js'
import { ConfigError } from '../../errors.js'
import type { Logger } from '../../log.js'
import { gatewayStatusTopic } from '../../protocol/topics.js'
import { BrokerLink } from './link.js'
import type { TransportTls } from './transport.js'

/** The longest reconnection delay, ms (the first is `mqttReconnectPeriod`). */
const RECONNECT_CAP_MS = 30_000
/**
 * Room above `maxDownlinkSize` for a message's fixed header, topic and properties. A message whose
 * payload is larger than `maxDownlinkSize` could never be sent to a device, so a packet larger than
 * this limit is refused unread (announced to MQTT 5 brokers in CONNECT).
 */
const PACKET_OVERHEAD = 1024

/**
 * The gateway's connections to an external broker (`mqttConnections` of them): client ids
 * `<mqttClientId or hypertcp-gw-<gatewayId>>-<n>`, stable across restarts so that a broker can keep
 * the gateway's session. The first carries the gateway's last will: the gateway's status is one
 * topic, and one connection speaks for it ([HT-5.4]).
 */
export function linksFromConfig(
  config: GatewayConfig,
  logger: Logger,
  onDropped: (topic: string, bytes: number) => void,
): BrokerLink[] {
  const urls = config.mqttUrl ?? []
  const stem = config.mqttClientId ?? `hypertcp-gw-${config.gatewayId}`
  const tls: TransportTls = {
    ca: readPem('mqttCa', config.mqttCa),
    cert: readPem('mqttCert', config.mqttCert),
    key: readPem('mqttKey', config.mqttKey),
    rejectUnauthorized: config.mqttRejectUnauthorized,
  }
  const count = config.mqttConnections
  const acl = new BrokerAcl(config.topics, config.customCommands)
  const will = {
    topic: gatewayStatusTopic(config.topics.gatewayStatus, config.gatewayId),
    payload: JSON.stringify({ online: false, reason: 'connection_lost', gateway: config.gatewayId }),
  }
  return Array.from(
    { length: count },
    (_, i) =>
      new BrokerLink({
        urls,
        username: config.mqttUsername,
        password: config.mqttPassword,
        clientId: `${stem}-${i}`,
        protocol: config.mqttProtocolVersion,
        keepalive: config.mqttKeepalive,
        sessionExpiry: sessionExpiry(config),
        tls,
        reconnectMs: config.mqttReconnectPeriod * 1000,
        reconnectCapMs: RECONNECT_CAP_MS,
        connectTimeoutMs: config.mqttConnectTimeout * 1000,
        maxPacketSize: config.maxDownlinkSize + PACKET_OVERHEAD,
        ...(i === 0 ? { will } : {}),
        onDropped,
        ...(config.offlineQueueMessages > 0
          ? { wantsRetained: (topic: string) => acl.is(topic, 'status') }
          : {}),
        logger: logger.child(count === 1 ? { component: 'mqtt' } : { component: 'mqtt', connection: i }),
      }),
  )
}

/**
 * With store-and-forward on, a session the broker keeps at least as long as a kept message lives:
 * what is published while the gateway restarts waits at the broker (stable client ids, QoS 1
 * subscriptions).
 */
function sessionExpiry(config: GatewayConfig): number {
  if (config.offlineQueueMessages === 0) return config.mqttSessionExpiry
  return Math.max(config.mqttSessionExpiry, config.offlineQueueTtl)
}

function readPem(key: string, path: string | null): Buffer | undefined {
  if (path === null) return undefined
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}
