import type { HandlerContext } from './context.js'

/**
 * A device protocol (PROTOCOL decision 34): how its frames are read, answered and written. The
 * session (states, timers, backpressure, the order of answers), the bridge, the limits, the
 * metrics and the admin API are shared by every dialect; one lives in one folder of src/dialects/.
 */
export interface Dialect {
  /** Its name in logs, presence, metrics and the admin API (`hypertcp`, `blynk`). */
  readonly name: string
  /**
   * Handles one frame before login (`awaiting-login`), and once logged in (`online`); the session
   * reads nothing in its other states. `body` is only valid during the call.
   */
  beforeLogin(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void
  online(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void
  /** The answer to a login: `status` is the HyperTCP/Blynk status (200 = success). */
  loginReply(msgId: number, status: number): Buffer
  /** The answer to a device's frame (`status` 0 = success); undefined when none is sent. */
  answer(msgId: number, status: number): Buffer | undefined
  /** A frame sending the device to another server. */
  redirect(msgId: number, server: string, port: number): Buffer
  /**
   * The frames that carry a message from the broker (`type` JSON_MESSAGE or BROADCAST, `body` the
   * envelope, `payload` its payload when already parsed). Absent: the envelope is the body of one
   * frame of `type` (HyperTCP).
   */
  translate?(type: number, body: Buffer | string, payload: unknown): Translated
  /** The largest body its devices read until they say otherwise ({@link DeviceInfo}); none: the gateway's limit. */
  readonly maxDownlinkSize?: number
  /** Whether the device answers every frame it is sent, so that at-least-once delivery can work. */
  readonly acknowledgesDownlinks: boolean
}

/** A downlink in a dialect's own frames, or why the device cannot be sent it. */
export type Translated =
  | { readonly ok: true; readonly type: number; readonly bodies: readonly string[] }
  | { readonly ok: false; readonly reason: string }

/**
 * What a device said about itself after login (a Blynk device's INTERNAL info), and the limits the
 * gateway takes from it.
 */
export interface DeviceInfo {
  readonly info: Readonly<Record<string, string>>
  /** ms of silence after which the gateway pings the device (then closes after half as long). */
  readonly keepaliveMs?: number
  /** The largest body the device reads. */
  readonly maxDownlinkSize?: number
}
