/**
 * hypertcp-gateway: HyperTCP devices ⇄ MQTT. The public API, with no side effects: the gateway,
 * its options and results, and the errors it reports.
 *
 * ```ts
 * import { Gateway } from 'hypertcp-gateway'
 * const gw = await new Gateway({ port: 8080, devices: [{ id: 'sensor-1', token: 's3cret' }] }).start()
 * // … later
 * await gw.close()
 * ```
 */
export type { DeviceEntry } from './auth/registry.js'
export type { ConfigInput } from './config/resolve.js'
export type { GatewayConfig, QosConfig, TopicsConfig } from './config/settings.js'
export { ConfigError, GatewayError, type GatewayErrorCode, PublishRefusedError } from './errors.js'
export { createGateway, Gateway, type GatewayOptions, type ShutdownResult } from './gateway/gateway.js'
export { type Logger, silentLogger } from './log.js'
export type { CloseReason } from './session/types.js'
export type { GatewayStats } from './stats.js'
