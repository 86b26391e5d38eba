import type { Identity } from '../auth/registry.js'
import type { FrameHandler, FrameTooLargeError } from '../protocol/decoder.js'
import type { HandlerContext } from './context.js'

/**
 * A device protocol (PROTOCOL decision 34): how its bytes are framed, read, answered and written.
 * The session (states, timers, backpressure, the order of answers), the bridge, the limits, the
 * metrics and the admin API are shared by every dialect; one lives in one folder of src/dialects/.
 */
export interface Dialect {
  /** Its name in logs, presence, metrics and the admin API (`hypertcp`, `blynk`, `lines`…). */
  readonly name: string
  /**
   * Its framing: a decoder calling `onFrame` once per frame (a line, a chunk…). Absent: the 5-byte
   * header of HyperTCP and Blynk (protocol/decoder.ts), device frames as a server reads them.
   */
  createDecoder?(
    maxFrameSize: number,
    onFrame: FrameHandler,
    onTooLarge: (err: FrameTooLargeError) => void,
  ): Decoder
  /**
   * Handles one frame before login (`awaiting-login`), and once logged in (`online`); the session
   * reads nothing in its other states. `body` is only valid during the call; `length` is the
   * header's length field (a RESPONSE's status, where the framing has one).
   */
  beforeLogin(ctx: HandlerContext, type: number, msgId: number, body: Buffer, length: number): void
  online(ctx: HandlerContext, type: number, msgId: number, body: Buffer, length: number): void
  /**
   * A connection the gateway opened to a device that listens (`dialOut`): starts it — logs in to
   * the device, or takes `peer.identity` at once. Absent: the dialect only takes connections.
   */
  open?(ctx: HandlerContext, peer: Peer): void
  /** The answer to a login: `status` is the HyperTCP/Blynk status (200 = success). Absent: none. */
  loginReply?(msgId: number, status: number): Buffer
  /** The answer to a device's frame (`status` 0 = success); undefined when none is sent. */
  answer(msgId: number, status: number): Buffer | undefined
  /** The gateway's keepalive PING. Absent: no application keepalive (TCP keepalive only). */
  ping?(msgId: number): Buffer
  /** A frame sending the device to another server. Absent: it cannot be redirected. */
  redirect?(msgId: number, server: string, port: number): Buffer
  /**
   * The frame bodies that carry a message from the broker (`type` JSON_MESSAGE or BROADCAST, `body`
   * the envelope, `payload` its payload when already parsed), each written with {@link encode}.
   * Absent: the envelope is the body of one HyperTCP frame of `type`.
   */
  translate?(type: number, body: Buffer | string, payload: unknown): Translated
  /** One translated body as bytes on the wire. Absent: a 5-byte header of the translated type, then it. */
  encode?(type: number, msgId: number, body: string): Buffer
  /** The largest body its devices read until they say otherwise ({@link DeviceInfo}); none: the gateway's limit. */
  readonly maxDownlinkSize?: number
  /** Whether the device answers every frame it is sent, so that at-least-once delivery can work. */
  readonly acknowledgesDownlinks: boolean
}

/** What a session reads its bytes with. */
export interface Decoder {
  push(chunk: Buffer): void
  /** No frame is delivered until {@link resume}; what arrives meanwhile is held. */
  pause(): void
  resume(): void
  /** Bytes of a frame begun and not finished. */
  readonly partial: number
}

/** A device the gateway dials (`dialOut`): who it is, and the token to log in to it with, if any. */
export interface Peer {
  readonly identity: Identity
  readonly token?: string
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
