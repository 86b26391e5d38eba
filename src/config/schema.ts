import { hostname } from 'node:os'
import type { DeviceEntry } from '../auth/registry.js'

/** Topic templates ([HT-5]); placeholders: %c device id, %u username, %g gateway id. */
export interface TopicsConfig {
  /** [HT-5.1] Device → server messages. Default `hypertcp/%c/up`. */
  up: string
  /** [HT-5.2] Messages to a device; the gateway subscribes per logged-in device. Default `hypertcp/%c/dn`. */
  down: string
  /** [HT-5.4] Retained presence. Default `hypertcp/%c/status`. */
  status: string
  /** [HT-5.5] kick / redirect commands. Default `hypertcp/%c/ctl`. */
  control: string
  /** [HT-5.3] Broadcasts, shared by all gateway instances. Default `hypertcp/broadcast`. */
  broadcast: string
  /** [HT-5.4] The gateway's own retained status and last will. Default `hypertcp/$gateway/%g/status`. */
  gatewayStatus: string
}

export type QoS = 0 | 1 | 2

/** [HT-5.7] QoS per flow. */
export interface QosConfig {
  /** Publishes to the up topic. Default 1. */
  up: QoS
  /** Subscriptions to the down and control topics, and broadcast subscription. Default 1. */
  down: QoS
  /** Device-to-device publishes. Default 1. */
  direct: QoS
  /** Broadcast publishes. Default 1. */
  broadcast: QoS
  /** Presence publishes. Default 1. */
  presence: QoS
}

/** Every setting of the gateway, resolved. Sources: defaults < config file < HYPERTCP_* env < flags. */
export interface GatewayConfig {
  /** Names this instance in presence and its own status topic. Default: the host name. */
  gatewayId: string
  /** HyperTCP listen address. Default `0.0.0.0`. */
  host: string
  /** HyperTCP listen port; 0 = any free port. Default 8080. */
  port: number
  /** External broker (`mqtt://`, `mqtts://`, `ws://`, `wss://`); null = start the embedded Aedes broker. */
  mqttUrl: string | null
  mqttUsername: string | null
  mqttPassword: string | null
  /** MQTT client id; default `hypertcp-gw-<gatewayId>-<random>` (unique per process). */
  mqttClientId: string | null
  /** PEM files for `mqtts://` / `wss://`: CA bundle, client certificate and key. */
  mqttCa: string | null
  mqttCert: string | null
  mqttKey: string | null
  /** Verify the broker's certificate. Default true. */
  mqttRejectUnauthorized: boolean
  /** Seconds between reconnect attempts to the broker. Default 1. */
  mqttReconnectPeriod: number
  /** Embedded broker listen address. Default `0.0.0.0`. */
  brokerHost: string
  /** Embedded broker MQTT/TCP port; 0 = any free port. Default 1883. */
  brokerPort: number
  /** Embedded broker MQTT-over-WebSocket port; 0 = any free port; 'off' = none. Default 8083. */
  brokerWsPort: number | 'off'
  /** `error`, `warn`, `info`, `debug` or `silent`. Default `info`. */
  logLevel: 'error' | 'warn' | 'info' | 'debug' | 'silent'
  /** `pretty` (one readable line per event) or `json` (one JSON object per line). Default `pretty`. */
  logFormat: 'pretty' | 'json'
  /** [HT-3.1] Seconds a connection has to log in. Default 10. */
  loginTimeout: number
  /** [HT-3.4] Seconds of silence before the gateway pings; closed after a further half. Default 45. */
  keepalive: number
  /** [HT-1.3] Largest frame body accepted from a device, bytes (≤ 65535). Default 4096. */
  maxFrameSize: number
  /** [HT-2.6] Largest frame body sent to a device, bytes. Default 1024. */
  maxDownlinkSize: number
  /** Uplinks per device awaiting the broker before the gateway stops reading that device. Default 16. */
  maxInflight: number
  /** Bytes queued to a device that is not reading, beyond which downlinks to it are dropped. Default 65536. */
  maxWriteQueue: number
  /** Publishes awaiting the broker, all devices together; past it uplinks get SERVER_ERROR. Default 10000. */
  maxPendingPublishes: number
  topics: TopicsConfig
  qos: QosConfig
  /** The device registry. */
  devices: DeviceEntry[]
}

export type ScalarKind = 'string' | 'port' | 'int' | 'seconds' | 'boolean' | 'enum' | 'qos'

/** How one scalar setting is read and checked. The same table drives file, env and flags. */
export interface SettingSpec {
  readonly kind: ScalarKind
  readonly nullable?: boolean
  readonly choices?: readonly string[]
  readonly min?: number
  readonly max?: number
  /** Also accepts the literal 'off' (ports that can be disabled). */
  readonly off?: boolean
  /** Must be a URL with one of these protocols. */
  readonly protocols?: readonly string[]
  readonly doc: string
}

type ScalarKey = Exclude<keyof GatewayConfig, 'topics' | 'qos' | 'devices'>

export const SETTINGS: Readonly<Record<ScalarKey, SettingSpec>> = {
  gatewayId: { kind: 'string', doc: 'id of this gateway instance (presence, own status topic)' },
  host: { kind: 'string', doc: 'HyperTCP listen address' },
  port: { kind: 'port', doc: 'HyperTCP listen port (0 = any free port)' },
  mqttUrl: {
    kind: 'string',
    nullable: true,
    protocols: ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'],
    doc: 'external broker URL; when absent the embedded Aedes broker starts',
  },
  mqttUsername: { kind: 'string', nullable: true, doc: 'username for the external broker' },
  mqttPassword: { kind: 'string', nullable: true, doc: 'password for the external broker' },
  mqttClientId: { kind: 'string', nullable: true, doc: 'MQTT client id of the gateway' },
  mqttCa: { kind: 'string', nullable: true, doc: 'CA bundle (PEM file) to verify the broker' },
  mqttCert: { kind: 'string', nullable: true, doc: 'client certificate (PEM file) for the broker' },
  mqttKey: { kind: 'string', nullable: true, doc: 'client key (PEM file) for the broker' },
  mqttRejectUnauthorized: { kind: 'boolean', doc: "verify the broker's TLS certificate" },
  mqttReconnectPeriod: { kind: 'seconds', min: 0.1, max: 3600, doc: 'seconds between broker reconnects' },
  brokerHost: { kind: 'string', doc: 'embedded broker listen address' },
  brokerPort: { kind: 'port', doc: 'embedded broker MQTT/TCP port (0 = any free port)' },
  brokerWsPort: {
    kind: 'port',
    off: true,
    doc: "embedded broker MQTT-over-WebSocket port (0 = any free port, 'off' = none)",
  },
  logLevel: { kind: 'enum', choices: ['error', 'warn', 'info', 'debug', 'silent'], doc: 'log level' },
  logFormat: { kind: 'enum', choices: ['pretty', 'json'], doc: 'log format' },
  loginTimeout: { kind: 'seconds', min: 0.01, max: 3600, doc: 'seconds a connection has to log in' },
  keepalive: { kind: 'seconds', min: 0.01, max: 86400, doc: 'seconds of silence before the gateway pings' },
  maxFrameSize: { kind: 'int', min: 1, max: 65535, doc: 'largest frame body accepted, bytes' },
  maxDownlinkSize: { kind: 'int', min: 16, max: 65535, doc: 'largest frame body sent to a device, bytes' },
  maxInflight: { kind: 'int', min: 1, max: 65535, doc: 'uplinks per device awaiting the broker' },
  maxWriteQueue: { kind: 'int', min: 1024, max: 1 << 30, doc: 'bytes queued to a device before drops' },
  maxPendingPublishes: {
    kind: 'int',
    min: 1,
    max: 10_000_000,
    doc: 'publishes awaiting the broker, all devices',
  },
}

export const TOPIC_KEYS = ['up', 'down', 'status', 'control', 'broadcast', 'gatewayStatus'] as const
export const QOS_KEYS = ['up', 'down', 'direct', 'broadcast', 'presence'] as const

export function defaults(): GatewayConfig {
  return {
    gatewayId: hostname(),
    host: '0.0.0.0',
    port: 8080,
    mqttUrl: null,
    mqttUsername: null,
    mqttPassword: null,
    mqttClientId: null,
    mqttCa: null,
    mqttCert: null,
    mqttKey: null,
    mqttRejectUnauthorized: true,
    mqttReconnectPeriod: 1,
    brokerHost: '0.0.0.0',
    brokerPort: 1883,
    brokerWsPort: 8083,
    logLevel: 'info',
    logFormat: 'pretty',
    loginTimeout: 10,
    keepalive: 45,
    maxFrameSize: 4096,
    maxDownlinkSize: 1024,
    maxInflight: 16,
    maxWriteQueue: 65536,
    maxPendingPublishes: 10000,
    topics: {
      up: 'hypertcp/%c/up',
      down: 'hypertcp/%c/dn',
      status: 'hypertcp/%c/status',
      control: 'hypertcp/%c/ctl',
      broadcast: 'hypertcp/broadcast',
      gatewayStatus: 'hypertcp/$gateway/%g/status',
    },
    qos: { up: 1, down: 1, direct: 1, broadcast: 1, presence: 1 },
    devices: [],
  }
}
