import type { Duplex } from 'node:stream'
import type { Identity } from '../auth/registry.js'
import type { Logger } from '../log.js'
import { Cmd, HEADER_SIZE, Status } from '../protocol/constants.js'
import { FrameDecoder, type FrameTooLargeError } from '../protocol/decoder.js'
import {
  encodeFrame,
  encodeLoginReply,
  encodeResponse,
  encodeTextFrame,
  nextMsgId,
  writeHeader,
} from '../protocol/encoder.js'
import { redirectBody } from '../protocol/messages.js'
import type { GatewayStats } from '../stats.js'
import { dispatch } from './handlers/index.js'
import type { CloseReason, SessionHost } from './types.js'

/** Per-connection limits and timings (resolved from the gateway config). */
export interface SessionOptions {
  /** Largest frame body accepted from the device, bytes ([HT-1.3]). */
  readonly maxFrameSize: number
  /** Largest body sent to the device, bytes ([HT-2.6]). */
  readonly maxDownlinkSize: number
  /** [HT-3.1] ms to log in before the connection is closed. */
  readonly loginTimeoutMs: number
  /** [HT-3.4] ms of silence before the gateway pings; it closes after a further half of it. */
  readonly keepaliveMs: number
  /** Uplinks awaiting the broker per device; at the bound the gateway stops reading the socket. */
  readonly maxInflight: number
  /** Bytes queued for the device beyond which downlinks are dropped (it is not reading). */
  readonly maxWriteQueue: number
}

/** awaiting-login -> authenticating -> online -> closed; any state may go to closed. */
export type SessionState = 'awaiting-login' | 'authenticating' | 'online' | 'closed'

/** What may happen to a message handed to {@link Session.deliver}. */
export type DeliverResult = 'ok' | 'not_online' | 'too_large' | 'queue_full'

export type Connection = Duplex & { remoteAddress?: string | undefined; remotePort?: number | undefined }

/** Time the peer gets to close after the gateway ended the connection, before it is destroyed. */
const LINGER_MS = 2000

/**
 * One HyperTCP connection ([HT-3]): decodes frames, dispatches them by state, answers in the exact
 * shapes unchanged devices read, runs the login and keepalive timers, and applies backpressure:
 * while a login is being settled, or `maxInflight` uplinks await the broker, the socket is not read.
 * Works over any Duplex (tests use an in-memory pair).
 */
export class Session {
  readonly id: string
  readonly socket: Connection
  readonly options: SessionOptions
  readonly host: SessionHost
  readonly stats: GatewayStats
  readonly remote: string
  logger: Logger

  state: SessionState = 'awaiting-login'
  /** Set once the login is accepted. */
  identity: Identity | undefined
  closeReason: CloseReason | undefined

  /** Uplinks handed to the host and not yet completed. */
  inflight = 0

  private readonly decoder: FrameDecoder
  private lastMsgId = 0
  private lastActivity = 0
  private pingSentAt = 0
  private timer: NodeJS.Timeout | undefined
  private corked = false
  private reading = true
  /** Set by {@link stopReading}: the gateway is shutting down, nothing more is read. */
  private quiescing = false
  private lingerTimer: NodeJS.Timeout | undefined

  constructor(
    id: string,
    socket: Connection,
    options: SessionOptions,
    host: SessionHost,
    logger: Logger,
    stats: GatewayStats,
  ) {
    this.id = id
    this.socket = socket
    this.options = options
    this.host = host
    this.stats = stats
    this.remote = `${socket.remoteAddress ?? 'local'}:${socket.remotePort ?? 0}`
    this.logger = logger.child({ session: id, remote: this.remote })
    this.decoder = new FrameDecoder(
      options.maxFrameSize,
      (type, msgId, body) => this.onFrame(type, msgId, body),
      (err) => this.onFrameTooLarge(err),
    )
    this.lastActivity = Date.now()
    socket.on('data', (chunk: Buffer) => {
      this.lastActivity = Date.now() // [HT-3.4] any bytes count as activity
      this.decoder.push(chunk)
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.logger.debug('socket error', { code: err.code, error: err.message })
      this.close('socket_error')
    })
    socket.on('end', () => this.close('client_closed'))
    socket.on('close', () => {
      clearTimeout(this.lingerTimer)
      this.close('client_closed')
    })
    // [HT-3.1] Log in within loginTimeout or be closed.
    this.timer = setTimeout(() => this.close('login_timeout'), options.loginTimeoutMs)
    this.timer.unref()
  }

  get closed(): boolean {
    return this.state === 'closed'
  }

  get deviceId(): string | undefined {
    return this.identity?.deviceId
  }

  private onFrame(type: number, msgId: number, body: Buffer): boolean {
    this.stats.framesIn++
    if (this.state === 'closed') return false
    dispatch(this, type, msgId, body)
    return this.keepReading()
  }

  private onFrameTooLarge(err: FrameTooLargeError): void {
    // [HT-1.3] Refused on the header alone: answer with the status in the length field, close.
    this.logger.warn('frame too large', {
      type: err.type,
      length: err.length,
      limit: this.options.maxFrameSize,
    })
    this.reply(err.msgId, Status.ILLEGAL_COMMAND_BODY)
    this.close('frame_too_large')
  }

  /**
   * Whether the decoder may deliver the next frame; pauses the socket if not. Reading stops while
   * the login is being settled and while `maxInflight` uplinks await the broker (backpressure
   * reaches the device through TCP flow control instead of a growing buffer here).
   */
  private keepReading(): boolean {
    const ok =
      !this.quiescing &&
      (this.state === 'awaiting-login' ||
        (this.state === 'online' && this.inflight < this.options.maxInflight))
    if (!ok && this.reading && this.state !== 'closed') {
      this.reading = false
      this.socket.pause()
    }
    return ok
  }

  /** Resumes reading once what paused it has cleared. */
  private resumeReading(): void {
    if (
      this.reading ||
      this.quiescing ||
      this.state !== 'online' ||
      this.inflight >= this.options.maxInflight
    )
      return
    this.reading = true
    this.decoder.resume() // may close the session or pause again
    if (this.reading && !this.closed) this.socket.resume()
  }

  /**
   * Reads nothing more from the device (graceful shutdown): what it already sent is finished and
   * acknowledged, then the gateway closes it.
   */
  stopReading(): void {
    this.quiescing = true
    if (this.reading && !this.closed) {
      this.reading = false
      this.decoder.pause()
      this.socket.pause()
    }
  }

  /** [HT-1.5] The gateway's own ids: from 1, per connection, skipping 0 on wrap. */
  nextMsgId(): number {
    this.lastMsgId = nextMsgId(this.lastMsgId)
    return this.lastMsgId
  }

  /**
   * Writes a frame. Writes within one event-loop turn are corked and leave in one syscall.
   * Returns false once the connection can take no more.
   */
  write(frame: Buffer): boolean {
    if (this.socket.writableEnded || this.socket.destroyed) return false
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      process.nextTick(uncork, this)
    }
    this.stats.framesOut++
    this.socket.write(frame)
    return true
  }

  /** @internal */
  uncork(): void {
    this.corked = false
    this.socket.uncork()
  }

  /** RESPONSE with no body: `status` 0 = success, else the status in the length field ([HT-2.7]). */
  reply(msgId: number, status: number): void {
    this.write(encodeResponse(msgId, status))
  }

  /** Begins authentication; reading stays paused until the host settles the login. */
  login(msgId: number, identity: Identity): void {
    this.state = 'authenticating'
    this.identity = identity
    this.logger = this.logger.child({ deviceId: identity.deviceId })
    this.host.attach(this).then(
      () => this.loggedIn(msgId),
      (err: unknown) => {
        if (this.state !== 'authenticating') return
        this.logger.warn('login could not be completed: broker unavailable', { error: String(err) })
        this.write(encodeLoginReply(msgId, Status.SERVER_ERROR))
        this.close('broker_unavailable')
      },
    )
  }

  private loggedIn(msgId: number): void {
    if (this.state !== 'authenticating') return // closed meanwhile (timeout, takeover, peer left)
    this.state = 'online'
    this.stats.logins++
    this.stats.online++
    this.write(encodeLoginReply(msgId, Status.SUCCESS))
    this.logger.info('device online')
    clearTimeout(this.timer)
    this.lastActivity = Date.now()
    this.armKeepalive(this.options.keepaliveMs)
    this.resumeReading()
  }

  /** Refuses the login ([HT-3.2]): status byte in the reply's body, then close. */
  refuseLogin(msgId: number, status: number, reason: CloseReason): void {
    this.stats.loginFailures++
    this.write(encodeLoginReply(msgId, status))
    this.close(reason)
  }

  /** Hands a device message to the host; answers the device when the host is done ([HT-4.5]). */
  uplink(msgId: number, kind: 'server' | 'direct' | 'broadcast', targetId: string, payload: unknown): void {
    this.inflight++
    this.host.uplink(this, kind, targetId, payload, (status) => {
      this.inflight--
      if (status === 0) this.stats.published++
      else this.stats.rejected++
      if (this.state !== 'online') return
      this.reply(msgId, status)
      this.resumeReading()
    })
  }

  /**
   * Sends a JSON_MESSAGE or BROADCAST to the device. Refused, never truncated, when the body is
   * over the device's downlink limit ([HT-2.6]) or the device is not reading what it was sent.
   */
  deliver(type: number, body: Buffer | string): DeliverResult {
    if (this.state !== 'online') return 'not_online'
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    if (size > this.options.maxDownlinkSize) return 'too_large'
    if (this.socket.writableLength > this.options.maxWriteQueue) return 'queue_full'
    const id = this.nextMsgId()
    if (typeof body === 'string') {
      this.write(encodeTextFrame(type, id, body))
    } else {
      // A shared body (a broadcast) is written after its own header, uncopied; the writes are
      // corked, so both leave in one syscall.
      const header = Buffer.allocUnsafe(HEADER_SIZE)
      writeHeader(header, 0, type, id, body.length)
      this.write(header)
      this.socket.write(body)
    }
    return 'ok'
  }

  /** [HT-5.5] Sends REDIRECT (the JSON form unchanged devices read, [HT-2.8]) and closes. */
  redirect(server: string, port: number): void {
    if (this.state === 'closed') return
    this.write(encodeTextFrame(Cmd.REDIRECT, this.nextMsgId(), redirectBody(server, port)))
    this.close('redirected')
  }

  private armKeepalive(ms: number): void {
    this.timer = setTimeout(onKeepaliveTimer, ms, this)
    this.timer.unref()
  }

  /** @internal [HT-3.4] Runs when the keepalive timer fires; re-arms itself lazily. */
  keepaliveCheck(): void {
    if (this.state !== 'online') return
    const now = Date.now()
    const keepalive = this.options.keepaliveMs
    if (this.pingSentAt !== 0) {
      // A PING goes out only after `keepalive` ms of silence, so any activity stamped at or after
      // it (same millisecond included, on a fast link) is the device answering.
      if (this.lastActivity >= this.pingSentAt) {
        this.pingSentAt = 0
      } else {
        this.close('keepalive_timeout')
        return
      }
    }
    const idle = now - this.lastActivity
    if (idle < keepalive) {
      this.armKeepalive(keepalive - idle)
      return
    }
    this.pingSentAt = now
    this.write(encodeFrame(Cmd.PING, this.nextMsgId()))
    this.armKeepalive(Math.max(1, Math.floor(keepalive / 2)))
  }

  /**
   * Ends the connection for `reason` ([HT-3.8]). Idempotent. Frames already written are flushed
   * (a final RESPONSE or REDIRECT reaches the device); a peer that does not close in turn is
   * destroyed after a short linger.
   */
  close(reason: CloseReason): void {
    if (this.state === 'closed') return
    const wasOnline = this.state === 'online'
    this.state = 'closed'
    this.closeReason = reason
    clearTimeout(this.timer)
    if (wasOnline) this.stats.online--
    this.stats.closes[reason] = (this.stats.closes[reason] ?? 0) + 1
    const level = wasOnline || this.identity !== undefined ? 'info' : 'debug'
    this.logger[level]('connection closed', { reason })
    if (!this.socket.destroyed) {
      this.socket.end()
      this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS)
      this.lingerTimer.unref()
    }
    this.host.detach(this, reason)
  }
}

function uncork(session: Session): void {
  session.uncork()
}

function onKeepaliveTimer(session: Session): void {
  session.keepaliveCheck()
}
