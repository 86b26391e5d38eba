import { createLogger } from '../../src/adapters/logger.js'
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway/gateway.js'
import { silentLogger } from '../../src/log.js'
import { Mosquitto } from './mosquitto.js'
import { MqttWatcher } from './mqtt.js'

/** The test device registry. */
export const DEVICES = [
  { id: 'dev-1', token: 'tok-1' },
  { id: 'dev-2', token: 'tok-2', allowedIds: ['dev-2b'] },
  { id: 'dev-3', token: 'tok-3' },
  { id: 'dev-4', token: 'tok-4', username: 'acme' },
]

let instances = 0

/**
 * A gateway on 127.0.0.1 and free ports, quiet unless HTGW_TEST_LOG=debug|info is set.
 * Embedded broker (WebSocket off) unless `mqttUrl` is given.
 */
export function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const level = process.env.HTGW_TEST_LOG
  const logger = level === 'debug' || level === 'info' ? createLogger(level, 'pretty') : silentLogger
  return createGateway({
    gatewayId: `test-gw-${++instances}`,
    host: '127.0.0.1',
    port: 0,
    brokerHost: '127.0.0.1',
    brokerPort: 0,
    brokerWsPort: 'off',
    adminPort: 'off',
    devices: DEVICES,
    brokerUsers: TEST_BROKER_USERS.map((u) => ({ ...u })),
    // The suites log the same few ids in hundreds of times a minute: no flapping delay.
    loginFlapLimit: 0,
    // No store-and-forward unless a test asks: suites share a gateway (and a broker) between
    // tests, and a message kept in one would be delivered in the next. test/integration/
    // store-and-forward.test.ts turns it on.
    offlineQueueMessages: 0,
    dataDir: 'off',
    logger,
    ...options,
  })
}

/** The brokers every end-to-end suite runs against. */
export interface BrokerKind {
  readonly name: 'aedes' | 'mosquitto'
  /** Called in `before`: sets up what the broker needs (Mosquitto is started here). */
  setup(ctx: Mocha.Context): Promise<void>
  /** Gateway options that put a gateway on this broker; the first gateway of an aedes suite hosts it. */
  options(host?: Gateway): GatewayOptions
  teardown(): Promise<void>
  /** The running Mosquitto, for outage tests. */
  readonly mosquitto: Mosquitto | undefined
  /** How an MQTT client logs in to publish on control topics (none needed on a test Mosquitto). */
  readonly admin: Login | undefined
  /**
   * How an MQTT client logs in to act as the rest of the system: other gateways (their devices'
   * envelopes, presence) and the operators. On the embedded broker that is the gateway role.
   */
  readonly system: Login | undefined
}

/** The broker user other gateways log in to a gateway's embedded broker with (role gateway). */
export const PEER_GATEWAY = { username: 'peer-gateway', password: 'peer-secret' } as const
/** A broker user with the admin role (control topics: kick, redirect). */
export const BROKER_ADMIN = { username: 'ops', password: 'ops-secret' } as const

type Login = { readonly username: string; readonly password: string }

/** The broker users every test gateway's embedded broker has (unless a test gives its own). */
export const TEST_BROKER_USERS = [
  { ...PEER_GATEWAY, role: 'gateway' },
  { ...BROKER_ADMIN, role: 'admin' },
] as const

export function aedesBroker(): BrokerKind {
  return {
    name: 'aedes',
    mosquitto: undefined,
    async setup() {},
    options: (host) =>
      host
        ? { mqttUrl: host.mqttUrl, mqttUsername: PEER_GATEWAY.username, mqttPassword: PEER_GATEWAY.password }
        : {},
    admin: BROKER_ADMIN,
    system: PEER_GATEWAY,
    async teardown() {},
  }
}

export function mosquittoBroker(require: (ctx: Mocha.Context) => void): BrokerKind {
  let m: Mosquitto | undefined
  return {
    name: 'mosquitto',
    admin: undefined,
    system: undefined,
    get mosquitto() {
      return m
    },
    async setup(ctx) {
      require(ctx)
      m = await Mosquitto.start()
    },
    options: () => ({ mqttUrl: m!.url }),
    async teardown() {
      await m?.dispose()
    },
  }
}

/**
 * A suite's gateways and MQTT watchers, each stopped after its test: `gateway(options)` starts one
 * with the suite's `defaults` under `options`; `watch(gw, ...topics)` subscribes as the peer gateway
 * user (allowed everywhere on the embedded broker).
 */
export function suiteGateways(
  cleanups: { push(cleanup: () => unknown): void },
  defaults: GatewayOptions = {},
): {
  gateway(options?: GatewayOptions): Promise<Gateway>
  watch(gw: Gateway, ...topics: string[]): Promise<MqttWatcher>
} {
  return {
    async gateway(options = {}) {
      const gw = await startGateway({ ...defaults, ...options })
      cleanups.push(() => gw.close()) // idempotent: a test may have closed it
      return gw
    },
    async watch(gw, ...topics) {
      const w = await MqttWatcher.connect(gw.mqttUrl, topics, PEER_GATEWAY)
      cleanups.push(() => w.end())
      return w
    },
  }
}
