import type { AuthResult, Identity } from '../auth/registry.js'
import type { LoginRequest } from '../protocol/messages.js'
import type { Session } from './session.js'

/** [HT-3.8] Why a connection ended. Logged, counted, and published on the presence topic (5.4). */
export type CloseReason =
  | 'client_closed'
  | 'login_timeout'
  | 'invalid_token'
  | 'not_allowed'
  | 'keepalive_timeout'
  | 'takeover'
  | 'frame_too_large'
  | 'not_authenticated'
  | 'kicked'
  | 'redirected'
  | 'rate_limited'
  | 'shutdown'
  | 'socket_error'
  | 'broker_unavailable'
  | 'auth_unavailable'
  | 'slow_consumer'

export type UplinkKind = 'server' | 'direct' | 'broadcast'

/**
 * Completion of an uplink: 0 when the broker accepted it, else the status to put in the
 * RESPONSE's length field ([HT-4.5]: never a false success).
 */
export type UplinkDone = (status: number) => void

/** What a session needs from the rest of the gateway; the bridge implements it. */
export interface SessionHost {
  /**
   * [HT-3.2], [HT-3.3] Who logs in: the registry's answer, or — for a token it does not know, when
   * an auth hook is configured — a promise of the hook's (never rejected).
   */
  authenticate(request: LoginRequest, ip: string): AuthResult | Promise<AuthResult>
  /**
   * Makes a freshly authenticated session reachable: takes over an older connection of the same
   * device, subscribes its topics, announces presence. The login is answered when this settles.
   */
  attach(session: Session): Promise<void>
  /**
   * Publishes a device's message ([HT-4.2]–[HT-4.4]); `payloadJson` is its payload as JSON text.
   * `done` is called exactly once.
   */
  uplink(session: Session, kind: UplinkKind, targetId: string, payloadJson: string, done: UplinkDone): void
  /** [HT-5.6] Whether frames of this custom command type are taken from devices. */
  takesRaw(type: number): boolean
  /**
   * [HT-5.6] Publishes a frame of a custom command type, its body verbatim (the caller's copy,
   * kept by the host). `done` is called exactly once.
   */
  uplinkRaw(session: Session, type: number, body: Buffer, done: UplinkDone): void
  /** Publishes bytes as they came from the device (raw framing) on its up topic. */
  uplinkBytes(session: Session, body: Buffer, done: UplinkDone): void
  /** The session ended (after `attach` or not). Called exactly once per session. */
  detach(session: Session, reason: CloseReason): void
  /** The login reply has been written: what waited for the device may follow. */
  loggedIn?(session: Session): void
  /** The device said what it is (its info, {@link Session.info}): its presence says so. */
  described?(session: Session): void
  /** [HT-3.6] The device acknowledged the gateway's frame `msgId`. */
  acknowledged?(session: Session, msgId: number): void
}

export type { Identity }

/** What to do with a LOGIN, decided before the token is looked at. */
export type LoginGate =
  | { readonly action: 'proceed' }
  /** [HT-6.4] At the connection limit or draining: send the device to a peer gateway. */
  | { readonly action: 'redirect'; readonly server: string; readonly port: number }
  | { readonly action: 'refuse'; readonly status: number; readonly reason: CloseReason }

/** Admission decisions that need the gateway's view (connection counts, IP bans, draining). */
export interface Gatekeeper {
  checkLogin(session: Session): LoginGate
  /** A login was refused (wrong token, not allowed): counts towards the IP's ban. */
  loginFailed(session: Session): void
}
