/**
 * hypertcp-gateway: HyperTCP devices ⇄ MQTT. Public API, no side effects.
 *
 * ```ts
 * import { createGateway } from 'hypertcp-gateway'
 * const gw = await createGateway({ port: 8080, devices: [{ id: 'sensor-1', token: 's3cret' }] })
 * // … later
 * await gw.close()
 * ```
 */
export type { DeviceEntry, Identity } from './auth/registry.js'
export type { ConfigInput, ConfigLayer } from './config/resolve.js'
export type { GatewayConfig, QosConfig, TopicsConfig } from './config/settings.js'
export { ConfigError, GatewayError, type GatewayErrorCode } from './errors.js'
export { createGateway, type Gateway, type GatewayOptions } from './gateway.js'
export type { Logger } from './log.js'
export { silentLogger } from './log.js'
export { Cmd, Status } from './protocol/constants.js'
export { FrameDecoder, FrameTooLargeError } from './protocol/decoder.js'
export { encodeFrame, encodeLoginReply, encodeResponse, encodeTextFrame } from './protocol/encoder.js'
export type { CloseReason } from './session/types.js'
export type { GatewayStats } from './stats.js'
