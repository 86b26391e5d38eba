/**
 * Every setting of the gateway, declared once: its kind (type, checks, how its text is read), its
 * default, whether it is a secret or applies on reload, and the line that documents it. The
 * configuration's type, its validation, the `--flags` and `HYPERTCP_*` variables, `--print-config`
 * and docs/CONFIGURATION.md are all derived from these tables.
 *
 * Longer than 300 lines: one entry per setting, and a table is easier to read whole.
 */
import { hostname } from 'node:os'
import type { DeviceEntry } from '../auth/registry.js'
import { ID_CHARSETS } from '../protocol/ids.js'
import type { Placeholder } from '../protocol/topics.js'
import type { BrokerUser } from './broker-users.js'
import type { CustomCommand } from './collections.js'
import type { DialOutEntry } from './dial-out.js'
import {
  boolean,
  choice,
  cidrs,
  decimal,
  hostPort,
  hostPorts,
  integer,
  integerOrAuto,
  type Kind,
  nullable,
  origins,
  port,
  portOrOff,
  qos,
  text,
  url,
  urls,
} from './kinds.js'

/** One setting. */
export interface Setting<T> {
  readonly kind: Kind<T>
  /** The value when no source sets it; a function is called at each resolution (the host name). */
  readonly default: T | (() => T)
  /** What the reference says of the default, when not the value itself. */
  readonly defaultText?: string
  /** A password or token: never printed (`--print-config`, logs). */
  readonly secret?: boolean
  /** Applied by a reload (SIGHUP) without a restart. */
  readonly reload?: boolean
  /** One line, for `--help` and the reference. */
  readonly doc: string
}

const URL_PROTOCOLS = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'] as const

/** Broker connections by default: see `mqttConnections`, bench/README.md. */
export const DEFAULT_MQTT_CONNECTIONS = 8

/** The scalar settings: each has a flag (`mqttUrl` → `--mqtt-url`) and a variable (`HYPERTCP_MQTT_URL`). */
export const SETTINGS = {
  gatewayId: {
    kind: text(),
    default: () => hostname(),
    defaultText: 'the host name',
    doc: 'id of this gateway instance (presence, own status topic)',
  },
  host: {
    kind: text(),
    default: '0.0.0.0',
    doc: 'HyperTCP listen address',
  },
  port: {
    kind: portOrOff(),
    default: 8080,
    doc: "HyperTCP listen port (0 = any free port, 'off' = TLS only)",
  },
  tlsPort: {
    kind: portOrOff(),
    default: 'off',
    doc: "HyperTCP-over-TLS listen port ('off' = none)",
  },
  blynkPort: {
    kind: portOrOff(),
    default: 'off',
    doc: "Blynk listen port, for devices running the Blynk library unchanged ('off' = none; Blynk's own is 8442)",
  },
  blynkTlsPort: {
    kind: portOrOff(),
    default: 'off',
    doc: "Blynk-over-TLS listen port ('off' = none; Blynk's own is 8441), with tlsCert and tlsKey",
  },
  tlsCert: {
    kind: nullable(text()),
    default: null,
    reload: true,
    doc: 'TLS certificate (PEM file) of the TLS listeners',
  },
  tlsKey: {
    kind: nullable(text()),
    default: null,
    reload: true,
    doc: 'TLS private key (PEM file) of the TLS listeners',
  },
  tlsCa: {
    kind: nullable(text()),
    default: null,
    reload: true,
    doc: 'CA bundle (PEM file) for device client certificates',
  },
  tlsClientAuth: {
    kind: choice(['none', 'request', 'require']),
    default: 'none',
    doc: 'device client certificates: none, request or require',
  },
  mqttUrl: {
    kind: nullable(urls(URL_PROTOCOLS)),
    default: null,
    doc: 'external broker URL, or several (comma-separated) tried in turn; when absent the embedded Aedes broker starts',
  },
  mqttProtocolVersion: {
    kind: choice(['5', '3.1.1', 'auto']),
    default: 'auto',
    doc: 'MQTT version to the external broker: 5, 3.1.1, or auto (5, else 3.1.1)',
  },
  mqttUsername: {
    kind: nullable(text()),
    default: null,
    doc: 'username for the external broker',
  },
  mqttPassword: {
    kind: nullable(text()),
    default: null,
    secret: true,
    doc: 'password for the external broker',
  },
  mqttClientId: {
    kind: nullable(text()),
    default: null,
    defaultText: '`hypertcp-gw-<gatewayId>`',
    doc: 'MQTT client id stem of the gateway; each connection adds -0, -1, …',
  },
  mqttCa: {
    kind: nullable(text()),
    default: null,
    doc: 'CA bundle (PEM file) to verify the broker',
  },
  mqttCert: {
    kind: nullable(text()),
    default: null,
    doc: 'client certificate (PEM file) for the broker',
  },
  mqttKey: {
    kind: nullable(text()),
    default: null,
    doc: 'client key (PEM file) for the broker',
  },
  mqttRejectUnauthorized: {
    kind: boolean(),
    default: true,
    doc: "verify the broker's TLS certificate",
  },
  mqttReconnectPeriod: {
    kind: decimal(0.01, 30, 'seconds'),
    default: 1,
    doc: 'seconds before the first broker reconnect (then doubling, jittered, up to 30)',
  },
  mqttKeepalive: {
    kind: integer(0, 65_535),
    default: 30,
    doc: 'MQTT keepalive to the external broker, whole seconds (0 = off)',
  },
  mqttConnectTimeout: {
    kind: decimal(0.1, 600, 'seconds'),
    default: 10,
    doc: "seconds to connect and get the broker's CONNACK (start-up waits as long)",
  },
  mqttSessionExpiry: {
    kind: integer(0, 4_294_967_295),
    default: 0,
    doc: "seconds the broker keeps the gateway's session after a disconnect (0 = clean sessions)",
  },
  shutdownTimeout: {
    kind: decimal(0.1, 3_600, 'seconds'),
    default: 10,
    doc: 'seconds a stop may take to get what devices sent acknowledged; then it stops anyway',
  },
  workers: {
    kind: integerOrAuto(1, 256),
    default: 1,
    doc: "gateway processes sharing the device ports ('auto' = one per core); above 1 a primary process runs the embedded broker and forks them (command line only)",
  },
  workerBalancing: {
    kind: choice(['round-robin', 'kernel']),
    default: 'round-robin',
    doc: "with workers, who accepts device connections: 'round-robin' (the primary, handing them to each worker in turn: an even spread) or 'kernel' (each worker from the shared port: faster at large reconnects, the spread uneven)",
  },
  mqttConnections: {
    kind: integer(1, 64),
    default: 8,
    doc: 'connections to the external broker; each device uses one, chosen by its id',
  },
  brokerHost: {
    kind: text(),
    default: '127.0.0.1',
    doc: 'embedded broker listen address; beyond loopback it needs broker users',
  },
  brokerPort: {
    kind: port(),
    default: 1883,
    doc: 'embedded broker MQTT/TCP port (0 = any free port)',
  },
  brokerWsPort: {
    kind: portOrOff(),
    default: 8083,
    doc: "embedded broker MQTT-over-WebSocket port (0 = any free port, 'off' = none)",
  },
  brokerWsOrigins: {
    kind: origins(),
    default: [],
    doc: "web origins (https://app.example) whose pages may use the embedded broker's WebSocket; others are refused (403), clients sending no Origin (not browsers) are not",
  },
  brokerTlsPort: {
    kind: portOrOff(),
    default: 'off',
    doc: "embedded broker MQTT-over-TLS port ('off' = none)",
  },
  maxBrokerConnections: {
    kind: integer(1, 1_000_000),
    default: 1000,
    doc: "embedded-broker connections held at once (all its listeners); taken from maxConnections' default open-files budget",
  },
  maxRetainedMessages: {
    kind: integer(1, 100_000_000),
    default: 10_000,
    doc: 'retained messages the embedded broker keeps, presence aside; past it the oldest is cleared',
  },
  maxRetainedBytes: {
    kind: integer(1024, 68_719_476_736),
    default: 67_108_864,
    doc: 'bytes of retained messages the embedded broker keeps, presence aside; past it the oldest are cleared',
  },
  maxBrokerMessageSize: {
    kind: integer(1024, 268_435_455),
    default: 262_144,
    doc: 'largest MQTT packet an embedded-broker client may send, bytes; a client announcing more is closed before it is read',
  },
  brokerConnectTimeout: {
    kind: decimal(0.01, 3_600, 'seconds'),
    default: 10,
    doc: 'seconds an embedded-broker client has to send CONNECT',
  },
  brokerUsersFile: {
    kind: nullable(text()),
    default: null,
    doc: 'JSON file of broker users (a list, or {"brokerUsers": [...]}), added to brokerUsers',
  },
  anonymousRole: {
    kind: choice(['app', 'monitor', 'admin', 'none']),
    default: 'app',
    doc: "role of embedded-broker clients that give no username, from loopback only ('none' = refused)",
  },
  brokerUsername: {
    kind: nullable(text()),
    default: null,
    doc: 'a broker user with the admin role (the older way: prefer brokerUsers)',
  },
  brokerPassword: {
    kind: nullable(text()),
    default: null,
    secret: true,
    doc: "brokerUsername's password",
  },
  adminHost: {
    kind: text(),
    default: '127.0.0.1',
    doc: 'admin listener address (metrics, health, API, dashboard); beyond loopback it needs adminToken',
  },
  adminPort: {
    kind: portOrOff(),
    default: 8090,
    doc: "admin listener port (0 = any free port, 'off' = none)",
  },
  adminToken: {
    kind: nullable(text()),
    default: null,
    secret: true,
    doc: 'bearer token the admin API and /metrics require (health checks never do)',
  },
  authUrl: {
    kind: nullable(url(['http:', 'https:'])),
    default: null,
    doc: 'external auth hook: logins whose token is not in devices are POSTed here (docs/CONFIGURATION.md#auth-hook)',
  },
  authTimeout: {
    kind: decimal(0.05, 60, 'seconds'),
    default: 2,
    doc: 'seconds the auth hook has to answer (else the login gets SERVER_ERROR)',
  },
  authCacheTtl: {
    kind: decimal(0, 86_400, 'seconds'),
    default: 60,
    doc: 'seconds a positive answer of the auth hook is reused (0 = never)',
  },
  authConcurrency: {
    kind: integer(1, 10_000),
    default: 64,
    doc: 'auth hook requests in flight at once (more wait their turn)',
  },
  logLevel: {
    kind: choice(['error', 'warn', 'info', 'debug', 'silent']),
    default: 'info',
    doc: 'error, warn, info, debug or silent',
  },
  logFormat: {
    kind: choice(['pretty', 'json']),
    default: 'pretty',
    doc: 'pretty (one readable line per event) or json (one object per line)',
  },
  loginTimeout: {
    kind: decimal(0.01, 3_600, 'seconds'),
    default: 10,
    doc: 'seconds a connection has to log in',
  },
  keepalive: {
    kind: decimal(0.01, 86_400, 'seconds'),
    default: 45,
    doc: 'seconds of silence before the gateway pings; it closes after half as long again',
  },
  idCharset: {
    kind: choice(ID_CHARSETS),
    default: 'ascii',
    doc: "characters device ids and targetIds may have: 'ascii' (printable ASCII) or 'unicode' (any that shows: no controls, invisible or bidi characters)",
  },
  maxFrameSize: {
    kind: integer(1, 65_535),
    default: 4096,
    doc: 'largest frame body accepted, bytes (a larger header is refused on arrival)',
  },
  maxDownlinkSize: {
    kind: integer(16, 65_535),
    default: 1024,
    doc: 'largest frame body sent to a device, bytes (the original parses into 512)',
  },
  maxInflight: {
    kind: integer(1, 65_535),
    default: 16,
    doc: 'answers per device still owed (uplinks awaiting the broker, and the answers queued behind them); at the bound its socket is not read',
  },
  ackHoldMs: {
    kind: integer(0, 1_000),
    default: 2,
    doc: "ms a device's acks may wait for its other uplinks at the broker, to leave together (0 = off)",
  },
  maxWriteQueue: {
    kind: integer(1024, 1_073_741_824),
    default: 65_536,
    doc: 'bytes queued to a device before drops',
  },
  dataDir: {
    kind: text(),
    default: './data',
    doc: "directory of the gateway's own data (the downlink store), created at start; 'off' keeps the store in memory only",
  },
  downlinkDelivery: {
    kind: choice(['at-least-once', 'at-most-once']),
    default: 'at-least-once',
    doc: "'at-least-once': a downlink leaves the store when the device acknowledges it, and is sent again after a connection loss; 'at-most-once': sent once",
  },
  offlineQueueMessages: {
    kind: integer(0, 1_000_000),
    default: 100,
    doc: 'messages kept per device while it is not connected (store-and-forward; 0 = off): past it the oldest goes',
  },
  offlineQueueBytes: {
    kind: integer(1024, 1_073_741_824),
    default: 65_536,
    doc: 'bytes kept per device while it is not connected: past it the oldest message goes',
  },
  offlineQueueTtl: {
    kind: integer(1, 31_536_000),
    default: 86_400,
    doc: 'seconds a kept message waits for its device before it expires',
  },
  offlineStoreBytes: {
    kind: integer(65_536, 1_099_511_627_776),
    default: 268_435_456,
    doc: 'bytes kept for all devices together: past it the oldest message of all goes',
  },
  maxPendingPublishes: {
    kind: integer(1, 10_000_000),
    default: 10_000,
    doc: 'publishes awaiting the broker, all devices; past it uplinks get SERVER_ERROR',
  },
  drainTimeout: {
    kind: decimal(0.01, 3_600, 'seconds'),
    default: 30,
    doc: 'seconds a device may leave written data unread',
  },
  messageRate: {
    kind: decimal(0, 1_000_000, 'number'),
    // Sensors send a few messages a minute; 50/s with a burst of 100 leaves any real device room
    // and stops one looping device from taking the broker link from thousands of others.
    default: 50,
    doc: 'messages per second per device, past the burst answered QUOTA_LIMIT (0 = no limit)',
  },
  messageBurst: {
    kind: integer(1, 1_000_000),
    default: 100,
    doc: 'messages a device may send at once above the rate',
  },
  broadcastRate: {
    kind: decimal(0, 1_000_000, 'number'),
    default: 10,
    doc: 'broadcasts per second this instance takes, from its devices (past it QUOTA_LIMIT) and from MQTT (past it dropped); 0 = no limit',
  },
  broadcastBurst: {
    kind: integer(1, 1_000_000),
    default: 20,
    doc: 'broadcasts taken at once above broadcastRate',
  },
  maxConnections: {
    kind: nullable(integer(1, 10_000_000)),
    default: null,
    defaultText: 'the open-files limit less 300',
    doc: 'connections held at once (default: the open-files limit less 300)',
  },
  overflowRedirect: {
    kind: nullable(hostPort()),
    default: null,
    doc: 'host:port LOGINs are redirected to at maxConnections or while draining',
  },
  redirectAllow: {
    kind: hostPorts(),
    default: [],
    defaultText: 'overflowRedirect, if set',
    reload: true,
    doc: 'host:port a redirect on a control topic may send devices to; others are refused and logged',
  },
  maxConnectionRate: {
    kind: decimal(0, 10_000_000, 'number'),
    default: 20_000,
    doc: 'new connections per second (0 = no limit)',
  },
  ipConnectionRate: {
    kind: decimal(0, 1_000_000, 'number'),
    default: 20,
    doc: 'new connections per second per IP (0 = no limit)',
  },
  ipConnectionBurst: {
    kind: integer(1, 1_000_000),
    default: 100,
    doc: 'connections one IP may open at once above the rate',
  },
  loginFailureLimit: {
    kind: integer(0, 1_000_000),
    default: 10,
    doc: 'failed logins per IP that trigger a ban (0 = never)',
  },
  loginFailureWindow: {
    kind: decimal(0.01, 86_400, 'seconds'),
    default: 60,
    doc: 'seconds over which login failures count',
  },
  loginBanTime: {
    kind: decimal(0, 2_592_000, 'seconds'),
    default: 300,
    doc: 'seconds a banned IP is refused',
  },
  loginFlapLimit: {
    kind: integer(0, 1_000_000),
    default: 10,
    doc: 'logins of one device id within loginFlapWindow before further ones are delayed, progressively (0 = never)',
  },
  loginFlapWindow: {
    kind: decimal(0.01, 86_400, 'seconds'),
    default: 60,
    doc: "seconds over which a device id's logins count for loginFlapLimit",
  },
  allowCidrs: {
    kind: cidrs(),
    default: [],
    doc: 'only these networks may connect (empty = all)',
  },
  denyCidrs: {
    kind: cidrs(),
    default: [],
    doc: 'these networks may never connect',
  },
  rateLimitExempt: {
    kind: cidrs(),
    default: ['127.0.0.0/8', '::1/128'],
    doc: 'networks the per-IP limits and bans do not apply to',
  },
}

/** A topic template ([HT-5]); placeholders: %c device id, %u username, %g gateway id. */
export interface TopicSetting {
  /** null: off unless set (the optional topics between gateway instances). */
  readonly default: string | null
  /** The placeholders it may use. */
  readonly placeholders: readonly Placeholder[]
  /** It must use %c: one topic per device. */
  readonly perDevice: boolean
  readonly doc: string
}

/** Topic templates: `topics.<name>` in the file, `HYPERTCP_TOPICS_<NAME>` in the environment. */
export const TOPICS = {
  up: {
    default: 'hypertcp/%c/up',
    placeholders: ['c', 'u', 'g'],
    perDevice: false,
    doc: '[HT-5.1] device → server messages',
  },
  down: {
    default: 'hypertcp/%c/dn',
    placeholders: ['c', 'u'],
    perDevice: true,
    doc: '[HT-5.2] messages to a device; subscribed per logged-in device',
  },
  status: {
    default: 'hypertcp/%c/status',
    placeholders: ['c', 'u'],
    perDevice: true,
    doc: "[HT-5.4] a device's retained presence",
  },
  control: {
    default: 'hypertcp/%c/ctl',
    placeholders: ['c', 'u'],
    perDevice: true,
    doc: '[HT-5.5] kick, redirect, and takeovers between gateway instances',
  },
  broadcast: {
    default: 'hypertcp/broadcast',
    placeholders: [],
    perDevice: false,
    doc: '[HT-5.3] broadcasts, shared by every gateway instance',
  },
  gatewayStatus: {
    default: 'hypertcp/$gateway/%g/status',
    placeholders: ['g'],
    perDevice: false,
    doc: "[HT-5.4] the gateway's own retained status and last will",
  },
  peer: {
    default: null,
    placeholders: ['c', 'u'],
    perDevice: true,
    doc:
      '[HT-4.4] off unless set (with `peerBroadcast`), e.g. `hypertcp/%c/peer`: gateway instances send each other ' +
      'device-to-device messages and takeover notices here instead of on the down and control topics, so that ' +
      "a broker's ACL can let only gateways write them; a `from` on the down topic then reads `server`, and a " +
      'takeover on the control topic is ignored',
  },
  peerBroadcast: {
    default: null,
    placeholders: [],
    perDevice: false,
    doc:
      "[HT-5.3] off unless set (with `peer`), e.g. `hypertcp/$peers/broadcast`: devices' broadcasts between " +
      'gateway instances; a broadcast on `broadcast` then comes `from` `server`',
  },
} as const satisfies Record<string, TopicSetting>

/** QoS per flow ([HT-5.7]): `qos.<name>` in the file, `HYPERTCP_QOS_<NAME>` in the environment. */
export const QOS = {
  up: { kind: qos(), default: 1, doc: 'publishes to the up topic' },
  down: { kind: qos(), default: 1, doc: 'subscriptions to the down, control and broadcast topics' },
  direct: { kind: qos(), default: 1, doc: 'device-to-device publishes' },
  broadcast: { kind: qos(), default: 1, doc: 'broadcast publishes' },
  presence: { kind: qos(), default: 1, doc: 'presence publishes' },
}

export type SettingKey = keyof typeof SETTINGS
export type TopicKey = keyof typeof TOPICS
export type QosKey = keyof typeof QOS

type ValueOf<S> = S extends { readonly kind: Kind<infer T> } ? T : never
export type ScalarConfig = { -readonly [K in SettingKey]: ValueOf<(typeof SETTINGS)[K]> }
/** Every template; the optional ones ({@link TopicSetting.default} null) are null when off. */
export type TopicsConfig = {
  [K in TopicKey]: (typeof TOPICS)[K]['default'] extends null ? string | null : string
}
export type QosConfig = { [K in QosKey]: ValueOf<(typeof QOS)[K]> }

/** Every setting of the gateway, resolved. Sources: defaults < config file < HYPERTCP_* env < flags. */
export type GatewayConfig = ScalarConfig & {
  topics: TopicsConfig
  qos: QosConfig
  /** The device registry. */
  devices: DeviceEntry[]
  /** [HT-5.6] Custom command types mapped to raw topics. */
  customCommands: CustomCommand[]
  /** The embedded broker's users: `brokerUsers`, then those of `brokerUsersFile`. */
  brokerUsers: BrokerUser[]
  /** Devices the gateway dials (they listen). */
  dialOut: DialOutEntry[]
}
