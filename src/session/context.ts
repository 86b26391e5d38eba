import type { AuthResult, Identity } from '../auth/registry.js'
import type { Logger, LogLevelName, LogThrottle } from '../log.js'
import type { IdCharset } from '../protocol/ids.js'
import type { LoginRequest } from '../protocol/messages.js'
import type { DeviceInfo, Peer } from './dialect.js'
import type { DeliverResult, SessionState } from './session.js'
import type { CloseReason, LoginGate, UplinkKind } from './types.js'

/**
 * What a frame handler may read and do: the session's answers, its uplinks and its login, not its
 * state, timers, queues or counters. The Session implements it; handlers never see the Session.
 */
export interface HandlerContext {
  readonly state: SessionState
  /** `address:port` of the device, for logs. */
  readonly remote: string
  /** The device the gateway dialed, on a connection it opened (`dialOut`). */
  readonly peer: Peer | undefined
  readonly logger: Logger
  /** Warnings hostile input can trigger, at most one per kind per interval. */
  readonly throttle: LogThrottle
  /** Largest body sent to the device, bytes ([HT-2.6]). */
  readonly maxDownlinkSize: number
  /** The characters ids may have. */
  readonly idCharset: IdCharset
  log(level: LogLevelName, message: string, meta?: Record<string, unknown>): void
  debug(message: string, meta?: Record<string, unknown>): void

  /** RESPONSE with `status` in the length field ([HT-2.7]), after the answers owed before it. */
  reply(msgId: number, status: number): void
  /** [HT-3.5] The ack of a JSON ping and its pong (a JSON_MESSAGE), in their turn. */
  pong(msgId: number, body: string): void
  /** A frame to the device (JSON_MESSAGE, BROADCAST, custom), refused if too large or not read. */
  deliver(type: number, body: Buffer | string): DeliverResult
  /** A frame the gateway originates, already encoded. */
  write(frame: Buffer): boolean
  nextMsgId(): number
  close(reason: CloseReason): void
  /** Sends the device to another server (the dialect's REDIRECT) and closes. */
  redirect(server: string, port: number): void
  /** What the device said about itself (shown in its presence), and the limits taken from it. */
  describe(info: DeviceInfo): void

  /** [Rate limit] Whether the device may send one more message now. */
  allowMessage(): boolean
  /** A frame refused for its body (counted). */
  rejected(): void
  /** A frame cut to maxFrameSize and sent on all the same (counted: a dialed device's long line). */
  truncated(): void
  /** A device's RESPONSE to the gateway's frame `msgId` (counted; a kept downlink can go). */
  acknowledged(msgId: number): void

  /** Admission's word on a LOGIN, before its token is looked at. */
  checkLogin(): LoginGate
  authenticate(request: LoginRequest): AuthResult | Promise<AuthResult>
  /** An answer is awaited (the auth hook): read nothing more until the login is settled. */
  awaitAuthentication(): void
  /** A refused login: counts towards the address's ban. */
  loginFailed(): void
  login(msgId: number, identity: Identity): void
  refuseLogin(msgId: number, status: number, reason: CloseReason): void

  uplink(msgId: number, kind: UplinkKind, targetId: string, payloadJson: string): void
  /** Whether frames of this custom command type are taken from devices ([HT-5.6]). */
  takesRaw(type: number): boolean
  uplinkRaw(msgId: number, type: number, body: Buffer): void
  /** Bytes as they came (raw framing), to the device's up topic; `body` is the caller's own copy. */
  uplinkBytes(msgId: number, body: Buffer): void
}
