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

/**
 * [HT-5.6] A command type the protocol does not define, carried raw between devices and MQTT
 * (e.g. a binary sensor reading, a firmware chunk). Devices use it with the library's `sendFrame`
 * and `onCustomFrame`.
 */
export interface CustomCommand {
  /** The frame's command type: 1–255 and not one HyperTCP defines (0, 6, 29, 30, 41, 50). */
  type: number
  /** Where a frame of this type from a device is published, its body verbatim (%c %u %g); null = not accepted from devices. */
  up: string | null
  /** Subscribed for each logged-in device (%c %u); each message is sent to it as a frame of this type; null = none. */
  down: string | null
}

/** Every setting of the gateway, resolved. Sources: defaults < config file < HYPERTCP_* env < flags. */
export interface GatewayConfig {
  /** Names this instance in presence and its own status topic. Default: the host name. */
  gatewayId: string
  /** HyperTCP listen address. Default `0.0.0.0`. */
  host: string
  /** HyperTCP listen port; 0 = any free port; 'off' = no plain listener (TLS only). Default 8080. */
  port: number | 'off'
  /** HyperTCP-over-TLS listen port (same address as `host`); 'off' = none. Default 'off'. */
  tlsPort: number | 'off'
  /** PEM files of the TLS listeners (devices, and the embedded broker's MQTTS): certificate and key. */
  tlsCert: string | null
  tlsKey: string | null
  /** PEM CA bundle that device client certificates must chain to (with `tlsClientAuth`). */
  tlsCa: string | null
  /** Device client certificates: 'none', 'request' (verified if sent) or 'require'. Default 'none'. */
  tlsClientAuth: 'none' | 'request' | 'require'
  /**
   * External brokers (`mqtt://`, `mqtts://`, `ws://`, `wss://`), tried in turn: the nodes of a
   * cluster, or a primary and its standby. null = start the embedded Aedes broker.
   */
  mqttUrl: string[] | null
  /** MQTT version to the external broker: '5', '3.1.1', or 'auto' (5, else 3.1.1). Default 'auto'. */
  mqttProtocolVersion: '5' | '3.1.1' | 'auto'
  mqttUsername: string | null
  mqttPassword: string | null
  /**
   * MQTT client id stem; each broker connection adds `-<n>` (0, 1, …). Default
   * `hypertcp-gw-<gatewayId>`: stable, so a broker can keep the gateway's session.
   */
  mqttClientId: string | null
  /** PEM files for `mqtts://` / `wss://`: CA bundle, client certificate and key. */
  mqttCa: string | null
  mqttCert: string | null
  mqttKey: string | null
  /** Verify the broker's certificate. Default true. */
  mqttRejectUnauthorized: boolean
  /** Seconds before the first reconnection attempt (then doubling, jittered, up to 30 s). Default 1. */
  mqttReconnectPeriod: number
  /** MQTT keepalive to the external broker, seconds; 0 = off. Default 30. */
  mqttKeepalive: number
  /** Seconds to connect and get the broker's CONNACK; also how long start-up waits for it. Default 10. */
  mqttConnectTimeout: number
  /** Seconds the broker keeps the gateway's session after a disconnection; 0 = clean sessions. Default 0. */
  mqttSessionExpiry: number
  /**
   * Connections to the external broker, each device's traffic on one of them (by its id). Several
   * spread the load over brokers that handle each connection on one thread or process (Mosquitto
   * takes one packet per connection per event-loop turn; EMQX one Erlang process per
   * connection). Default 8. No effect on the embedded broker, which is used in-process.
   */
  mqttConnections: number
  /** Embedded broker listen address. Default `0.0.0.0`. */
  brokerHost: string
  /** Embedded broker MQTT/TCP port; 0 = any free port. Default 1883. */
  brokerPort: number
  /** Embedded broker MQTT-over-WebSocket port; 0 = any free port; 'off' = none. Default 8083. */
  brokerWsPort: number | 'off'
  /** Embedded broker MQTT-over-TLS port (uses `tlsCert`/`tlsKey`); 'off' = none. Default 'off'. */
  brokerTlsPort: number | 'off'
  /** When set, MQTT clients of the embedded broker must log in with these (the gateway itself need not). */
  brokerUsername: string | null
  brokerPassword: string | null
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
  /**
   * Seconds a stop (SIGTERM, `close()`) may take: what devices sent is acknowledged by the broker
   * meanwhile; past it the gateway stops anyway. Default 10.
   */
  shutdownTimeout: number
  /** Uplinks per device awaiting the broker before the gateway stops reading that device. Default 16. */
  maxInflight: number
  /**
   * Milliseconds the acknowledgements to a device may wait while more of its uplinks await the
   * broker, so that they leave together. 0 = each turn's leave at its end. Default 2.
   */
  ackHoldMs: number
  /** Bytes queued to a device that is not reading, beyond which downlinks to it are dropped. Default 65536. */
  maxWriteQueue: number
  /** Publishes awaiting the broker, all devices together; past it uplinks get SERVER_ERROR. Default 10000. */
  maxPendingPublishes: number
  /** Seconds a device may leave written data unread before it is closed (`slow_consumer`). Default 30. */
  drainTimeout: number
  /** Messages per second per device (token bucket); excess gets QUOTA_LIMIT. 0 = no limit. Default 0. */
  messageRate: number
  /** Messages a device may send at once above `messageRate`. Default 100. */
  messageBurst: number
  /**
   * Connections held at once; past it LOGINs are redirected to `overflowRedirect` or refused.
   * Default (null): the open-files limit less 300 (Linux), else 50000.
   */
  maxConnections: number | null
  /** `host:port` of a peer gateway that LOGINs are redirected to at `maxConnections` or while draining ([HT-6.4]). */
  overflowRedirect: string | null
  /** New connections per second, all addresses together; beyond it they are closed at once. 0 = no limit. Default 20000. */
  maxConnectionRate: number
  /** New connections per second from one IP; beyond it they are closed at once. 0 = no limit. Default 20. */
  ipConnectionRate: number
  /** Connections one IP may open at once above `ipConnectionRate`. Default 100. */
  ipConnectionBurst: number
  /** Failed logins from one IP within `loginFailureWindow` that ban it for `loginBanTime`. 0 = never. Default 10. */
  loginFailureLimit: number
  /** Seconds over which login failures are counted. Default 60. */
  loginFailureWindow: number
  /** Seconds an IP is banned (its logins refused with QUOTA_LIMIT). Default 300. */
  loginBanTime: number
  /** If not empty, only these networks (CIDR or address) may connect. */
  allowCidrs: string[]
  /** These networks may never connect. */
  denyCidrs: string[]
  /** Networks the per-IP rate limits and bans do not apply to. Default loopback. */
  rateLimitExempt: string[]
  topics: TopicsConfig
  qos: QosConfig
  /** The device registry. */
  devices: DeviceEntry[]
  /** [HT-5.6] Custom command types mapped to raw topics. Default none. */
  customCommands: CustomCommand[]
}

export type ScalarKind =
  | 'string'
  | 'port'
  | 'int'
  | 'seconds'
  | 'boolean'
  | 'enum'
  | 'qos'
  | 'cidrs'
  | 'hostport'
  | 'urls'

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

type ScalarKey = Exclude<keyof GatewayConfig, 'topics' | 'qos' | 'devices' | 'customCommands'>

export const SETTINGS: Readonly<Record<ScalarKey, SettingSpec>> = {
  gatewayId: { kind: 'string', doc: 'id of this gateway instance (presence, own status topic)' },
  host: { kind: 'string', doc: 'HyperTCP listen address' },
  port: { kind: 'port', off: true, doc: "HyperTCP listen port (0 = any free port, 'off' = TLS only)" },
  tlsPort: { kind: 'port', off: true, doc: "HyperTCP-over-TLS listen port ('off' = none)" },
  tlsCert: { kind: 'string', nullable: true, doc: 'TLS certificate (PEM file) of the TLS listeners' },
  tlsKey: { kind: 'string', nullable: true, doc: 'TLS private key (PEM file) of the TLS listeners' },
  tlsCa: { kind: 'string', nullable: true, doc: 'CA bundle (PEM file) for device client certificates' },
  tlsClientAuth: {
    kind: 'enum',
    choices: ['none', 'request', 'require'],
    doc: 'device client certificates: none, request or require',
  },
  mqttUrl: {
    kind: 'urls',
    nullable: true,
    protocols: ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'],
    doc: 'external broker URL, or several (comma-separated) tried in turn; when absent the embedded Aedes broker starts',
  },
  mqttProtocolVersion: {
    kind: 'enum',
    choices: ['5', '3.1.1', 'auto'],
    doc: 'MQTT version to the external broker: 5, 3.1.1, or auto (5, else 3.1.1)',
  },
  mqttUsername: { kind: 'string', nullable: true, doc: 'username for the external broker' },
  mqttPassword: { kind: 'string', nullable: true, doc: 'password for the external broker' },
  mqttClientId: {
    kind: 'string',
    nullable: true,
    doc: 'MQTT client id stem of the gateway; each connection adds -0, -1, …',
  },
  mqttCa: { kind: 'string', nullable: true, doc: 'CA bundle (PEM file) to verify the broker' },
  mqttCert: { kind: 'string', nullable: true, doc: 'client certificate (PEM file) for the broker' },
  mqttKey: { kind: 'string', nullable: true, doc: 'client key (PEM file) for the broker' },
  mqttRejectUnauthorized: { kind: 'boolean', doc: "verify the broker's TLS certificate" },
  mqttReconnectPeriod: {
    kind: 'seconds',
    min: 0.01,
    max: 30,
    doc: 'seconds before the first broker reconnect (then doubling, jittered, up to 30)',
  },
  mqttKeepalive: {
    kind: 'int',
    min: 0,
    max: 65535,
    doc: 'MQTT keepalive to the external broker, whole seconds (0 = off)',
  },
  mqttConnectTimeout: {
    kind: 'seconds',
    min: 0.1,
    max: 600,
    doc: "seconds to connect and get the broker's CONNACK (start-up waits as long)",
  },
  mqttSessionExpiry: {
    kind: 'int',
    min: 0,
    max: 4_294_967_295,
    doc: "seconds the broker keeps the gateway's session after a disconnect (0 = clean sessions)",
  },
  shutdownTimeout: {
    kind: 'seconds',
    min: 0.1,
    max: 3600,
    doc: 'seconds a stop may take to get what devices sent acknowledged; then it stops anyway',
  },
  mqttConnections: {
    kind: 'int',
    min: 1,
    max: 64,
    doc: 'connections to the external broker; each device uses one, chosen by its id',
  },
  brokerHost: { kind: 'string', doc: 'embedded broker listen address' },
  brokerPort: { kind: 'port', doc: 'embedded broker MQTT/TCP port (0 = any free port)' },
  brokerWsPort: {
    kind: 'port',
    off: true,
    doc: "embedded broker MQTT-over-WebSocket port (0 = any free port, 'off' = none)",
  },
  brokerTlsPort: { kind: 'port', off: true, doc: "embedded broker MQTT-over-TLS port ('off' = none)" },
  brokerUsername: {
    kind: 'string',
    nullable: true,
    doc: 'username MQTT clients of the embedded broker must give',
  },
  brokerPassword: {
    kind: 'string',
    nullable: true,
    doc: 'password MQTT clients of the embedded broker must give',
  },
  logLevel: {
    kind: 'enum',
    choices: ['error', 'warn', 'info', 'debug', 'silent'],
    doc: 'error, warn, info, debug or silent',
  },
  logFormat: {
    kind: 'enum',
    choices: ['pretty', 'json'],
    doc: 'pretty (one readable line per event) or json (one object per line)',
  },
  loginTimeout: { kind: 'seconds', min: 0.01, max: 3600, doc: 'seconds a connection has to log in' },
  keepalive: {
    kind: 'seconds',
    min: 0.01,
    max: 86400,
    doc: 'seconds of silence before the gateway pings; it closes after half as long again',
  },
  maxFrameSize: {
    kind: 'int',
    min: 1,
    max: 65535,
    doc: 'largest frame body accepted, bytes (a larger header is refused on arrival)',
  },
  maxDownlinkSize: {
    kind: 'int',
    min: 16,
    max: 65535,
    doc: 'largest frame body sent to a device, bytes (the original parses into 512)',
  },
  maxInflight: {
    kind: 'int',
    min: 1,
    max: 65535,
    doc: 'uplinks per device awaiting the broker; at the bound its socket is not read',
  },
  ackHoldMs: {
    kind: 'int',
    min: 0,
    max: 1000,
    doc: "ms a device's acks may wait for its other uplinks at the broker, to leave together (0 = off)",
  },
  maxWriteQueue: { kind: 'int', min: 1024, max: 1 << 30, doc: 'bytes queued to a device before drops' },
  maxPendingPublishes: {
    kind: 'int',
    min: 1,
    max: 10_000_000,
    doc: 'publishes awaiting the broker, all devices; past it uplinks get SERVER_ERROR',
  },
  drainTimeout: {
    kind: 'seconds',
    min: 0.01,
    max: 3600,
    doc: 'seconds a device may leave written data unread',
  },
  messageRate: {
    kind: 'seconds',
    min: 0,
    max: 1_000_000,
    doc: 'messages per second per device (0 = no limit)',
  },
  messageBurst: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    doc: 'messages a device may send at once above the rate',
  },
  maxConnections: {
    kind: 'int',
    nullable: true,
    min: 1,
    max: 10_000_000,
    doc: 'connections held at once (default: the open-files limit less 300)',
  },
  overflowRedirect: {
    kind: 'hostport',
    nullable: true,
    doc: 'host:port LOGINs are redirected to at maxConnections or while draining',
  },
  maxConnectionRate: {
    kind: 'seconds',
    min: 0,
    max: 10_000_000,
    doc: 'new connections per second (0 = no limit)',
  },
  ipConnectionRate: {
    kind: 'seconds',
    min: 0,
    max: 1_000_000,
    doc: 'new connections per second per IP (0 = no limit)',
  },
  ipConnectionBurst: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    doc: 'connections one IP may open at once above the rate',
  },
  loginFailureLimit: {
    kind: 'int',
    min: 0,
    max: 1_000_000,
    doc: 'failed logins per IP that trigger a ban (0 = never)',
  },
  loginFailureWindow: {
    kind: 'seconds',
    min: 0.01,
    max: 86400,
    doc: 'seconds over which login failures count',
  },
  loginBanTime: { kind: 'seconds', min: 0, max: 86400 * 30, doc: 'seconds a banned IP is refused' },
  allowCidrs: { kind: 'cidrs', doc: 'only these networks may connect (empty = all)' },
  denyCidrs: { kind: 'cidrs', doc: 'these networks may never connect' },
  rateLimitExempt: { kind: 'cidrs', doc: 'networks the per-IP limits and bans do not apply to' },
}

export const TOPIC_KEYS = ['up', 'down', 'status', 'control', 'broadcast', 'gatewayStatus'] as const
export const QOS_KEYS = ['up', 'down', 'direct', 'broadcast', 'presence'] as const

/** Broker connections by default: see {@link GatewayConfig.mqttConnections}, README "Performance". */
export const DEFAULT_MQTT_CONNECTIONS = 8

export function defaults(): GatewayConfig {
  return {
    gatewayId: hostname(),
    host: '0.0.0.0',
    port: 8080,
    tlsPort: 'off',
    tlsCert: null,
    tlsKey: null,
    tlsCa: null,
    tlsClientAuth: 'none',
    mqttUrl: null,
    mqttProtocolVersion: 'auto',
    mqttUsername: null,
    mqttPassword: null,
    mqttClientId: null,
    mqttCa: null,
    mqttCert: null,
    mqttKey: null,
    mqttRejectUnauthorized: true,
    mqttReconnectPeriod: 1,
    mqttKeepalive: 30,
    mqttConnectTimeout: 10,
    mqttSessionExpiry: 0,
    shutdownTimeout: 10,
    mqttConnections: DEFAULT_MQTT_CONNECTIONS,
    brokerHost: '0.0.0.0',
    brokerPort: 1883,
    brokerWsPort: 8083,
    brokerTlsPort: 'off',
    brokerUsername: null,
    brokerPassword: null,
    logLevel: 'info',
    logFormat: 'pretty',
    loginTimeout: 10,
    keepalive: 45,
    maxFrameSize: 4096,
    maxDownlinkSize: 1024,
    maxInflight: 16,
    ackHoldMs: 2,
    maxWriteQueue: 65536,
    maxPendingPublishes: 10000,
    drainTimeout: 30,
    messageRate: 0,
    messageBurst: 100,
    maxConnections: null,
    overflowRedirect: null,
    maxConnectionRate: 20000,
    ipConnectionRate: 20,
    ipConnectionBurst: 100,
    loginFailureLimit: 10,
    loginFailureWindow: 60,
    loginBanTime: 300,
    allowCidrs: [],
    denyCidrs: [],
    rateLimitExempt: ['127.0.0.0/8', '::1/128'],
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
    customCommands: [],
  }
}
