/**
 * One HyperTCP connection: its states, timers, backpressure and what its frame handlers may do.
 *
 * Longer than 300 lines: the login, keepalive, uplink and close transitions share the session's
 * state and are one state machine, read best in one place; the codec (protocol/), the frame
 * handlers (handlers/) and the write path (output.ts) are apart.
 */
import type { Duplex } from 'node:stream'
import type { AuthResult, Identity } from '../auth/registry.js'
import { TokenBucket } from '../limits/token-bucket.js'
import type { Logger, LogLevelName, LogThrottle } from '../log.js'
import { Cmd, HEADER_SIZE, Status } from '../protocol/constants.js'
import { FrameDecoder, type FrameTooLargeError } from '../protocol/decoder.js'
import { encodeTextFrame, nextMsgId, writeHeader } from '../protocol/encoder.js'
import type { IdCharset } from '../protocol/ids.js'
import type { LoginRequest } from '../protocol/messages.js'
import { bump, type GatewayStats } from '../stats.js'
import { AnswerQueue } from './answers.js'
import type { HandlerContext } from './context.js'
import type { Decoder, DeviceInfo, Dialect, Peer, Translated } from './dialect.js'
import { Output, type OutputOwner } from './output.js'
import type { CloseReason, Gatekeeper, LoginGate, SessionHost } from './types.js'
import type { WriteBatcher } from './write-batcher.js'

/** Per-connection limits and timings (resolved from the gateway config). */
export interface SessionOptions {
  /** The device protocol of the listener the connection came in on. */
  readonly dialect: Dialect
  /** Largest frame body accepted from the device, bytes ([HT-1.3]). */
  readonly maxFrameSize: number
  /** Largest body sent to the device, bytes ([HT-2.6]). */
  readonly maxDownlinkSize: number
  /** The characters device ids and targetIds may have. */
  readonly idCharset: IdCharset
  /** [HT-3.1] ms to log in before the connection is closed. */
  readonly loginTimeoutMs: number
  /** [HT-3.4] ms of silence before the gateway pings; it closes after a further half of it. */
  readonly keepaliveMs: number
  /** Uplinks awaiting the broker per device; at the bound the gateway stops reading the socket. */
  readonly maxInflight: number
  /** Bytes queued for the device beyond which downlinks are dropped (it is not reading). */
  readonly maxWriteQueue: number
  /** ms a device may leave written data unread before it is closed (`slow_consumer`). */
  readonly drainTimeoutMs: number
  /** Messages per second per device (0 = no limit), and the burst above it. */
  readonly messageRate: number
  readonly messageBurst: number
  readonly gatekeeper: Gatekeeper
  /** Shared by all sessions: warnings that hostile input triggers once per connection. */
  readonly throttle: LogThrottle
  /**
   * Shared by all sessions: flushes their writes once per event-loop turn, and bounds how long
   * the answers of a device with more uplinks in flight may wait for them (`holdMs`, 0 = never).
   */
  readonly batcher: WriteBatcher
}

/** awaiting-login -> authenticating -> online -> closed; any state may go to closed. */
export type SessionState = 'awaiting-login' | 'authenticating' | 'online' | 'closed'

/** What may happen to a message handed to {@link Session.deliver}. */
export type DeliverResult = 'ok' | 'not_online' | 'too_large' | 'queue_full' | 'unsupported'

/**
 * Whether a message is done with: sent, or never to be sent to this device (over its limit, not
 * in its dialect). `not_online` and `queue_full` may go later.
 */
export function isSettled(result: DeliverResult): boolean {
  return result !== 'not_online' && result !== 'queue_full'
}

export type Connection = Duplex & { remoteAddress?: string | undefined; remotePort?: number | undefined }

/** Time the peer gets to close after the gateway ended the connection, before it is destroyed. */
const LINGER_MS = 2000
/** Closes caused by the peer's own misbehaviour: nothing more is read from it. */
const ABRUPT = new Set<CloseReason>([
  'frame_too_large',
  'not_authenticated',
  'invalid_token',
  'not_allowed',
  'rate_limited',
  'login_timeout',
  'slow_consumer',
])

/** Bytes a closed connection may still send (while our last frames reach it) before it is cut. */
const DISCARD_LIMIT = 64 * 1024

/**
 * One HyperTCP connection ([HT-3]): decodes frames, dispatches them by state, answers in the exact
 * shapes unchanged devices read, runs the login and keepalive timers, and applies backpressure:
 * while a login is being settled, or `maxInflight` uplinks await the broker, the socket is not read.
 * Works over any Duplex (tests use an in-memory pair).
 */
export class Session implements HandlerContext, OutputOwner {
  readonly id: string
  readonly socket: Connection
  private readonly options: SessionOptions
  private readonly host: SessionHost
  private readonly stats: GatewayStats
  private readonly parentLogger: Logger
  private scopedLogger: Logger | undefined

  private _state: SessionState = 'awaiting-login'
  private _identity: Identity | undefined
  private _closeReason: CloseReason | undefined
  private _inflight = 0
  private _connectedAt = 0
  private _uplinks = 0
  private _downlinks = 0
  private _info: DeviceInfo | undefined
  private keepaliveMs: number

  private readonly decoder: Decoder
  private _peer: Peer | undefined
  private lastMsgId = 0
  private lastActivity = 0
  private pingSentAt = 0
  private timer: NodeJS.Timeout | undefined
  /** The frames to the device: corked per turn, answers held for the device's other uplinks. */
  private readonly output: Output
  /**
   * The read path: `reading`; `paused` (a login being settled, or `maxInflight` uplinks awaiting
   * the broker: TCP flow control holds the device back); `stopped` by {@link stopReading} for good.
   */
  private input: 'reading' | 'paused' | 'stopped' = 'reading'
  private lingerTimer: NodeJS.Timeout | undefined
  /** Bytes received after the close, dropped unread. */
  private discarded = 0
  /** Per-device message rate, when limited. */
  private bucket: TokenBucket | undefined
  /** The answers owed to the device, sent in the order of its requests (decision 22). */
  private readonly answers = new AnswerQueue()
  /** Writes one answer (the AnswerQueue's sink), bound once. */
  private readonly sendAnswer = (msgId: number, status: number, pong: string | undefined): void => {
    const answer = this.options.dialect.answer(msgId, status)
    if (answer !== undefined) this.output.write(answer, false)
    if (pong !== undefined) this.deliver(Cmd.JSON_MESSAGE, pong)
  }

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
    this.parentLogger = logger
    this.keepaliveMs = options.keepaliveMs
    this.output = new Output(socket, options.batcher, options.drainTimeoutMs, this, stats)
    const onFrame = (type: number, msgId: number, body: Buffer, length: number) =>
      this.onFrame(type, msgId, body, length)
    const onTooLarge = (err: FrameTooLargeError) => this.onFrameTooLarge(err)
    this.decoder =
      options.dialect.createDecoder?.(options.maxFrameSize, onFrame, onTooLarge) ??
      new FrameDecoder(options.maxFrameSize, onFrame, onTooLarge)
    this.lastActivity = Date.now()
    socket.on('data', (chunk: Buffer) => {
      if (this.state === 'closed') return this.discard(chunk.length)
      this.lastActivity = Date.now() // [HT-3.4] any bytes count as activity
      this.decoder.push(chunk)
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.debug('socket error', { code: err.code, error: err.message })
      this.close('socket_error')
    })
    socket.on('end', () => this.onEnd())
    socket.on('close', () => {
      clearTimeout(this.lingerTimer)
      this.close('client_closed')
    })
    // [HT-3.1] Log in within loginTimeout or be closed.
    this.timer = setTimeout(() => this.close('login_timeout'), options.loginTimeoutMs)
    this.timer.unref()
  }

  get state(): SessionState {
    return this._state
  }

  /** Set once the login is accepted. */
  get identity(): Identity | undefined {
    return this._identity
  }

  get closeReason(): CloseReason | undefined {
    return this._closeReason
  }

  /** The device protocol spoken on this connection. */
  get dialect(): string {
    return this.options.dialect.name
  }

  /** The device the gateway dialed, for a connection it opened (`dialOut`). */
  get peer(): Peer | undefined {
    return this._peer
  }

  /**
   * Starts a connection the gateway opened to a device (`dialOut`): the dialect logs in to it, or
   * takes the peer's identity at once.
   */
  open(peer: Peer): void {
    this._peer = peer
    this.options.dialect.open?.(this, peer)
    if (this._state === 'authenticating' && this.input === 'reading') {
      // Logged in by the connection itself: what the device sends waits for the login to settle.
      this.decoder.pause()
      this.input = 'paused'
      this.socket.pause()
    }
  }

  /** What the device said about itself, if its dialect has it say (a Blynk device's info). */
  get info(): Readonly<Record<string, string>> | undefined {
    return this._info?.info
  }

  /** Uplinks handed to the host and not yet completed. */
  get inflight(): number {
    return this._inflight
  }

  /** When the login was accepted (ms since the epoch), 0 before. */
  get connectedAt(): number {
    return this._connectedAt
  }

  /** Uplinks the broker accepted, and frames delivered to the device, on this connection. */
  get counters(): { readonly up: number; readonly down: number } {
    return { up: this._uplinks, down: this._downlinks }
  }

  /** `address:port` of the device, for logs. */
  get remote(): string {
    return `${this.socket.remoteAddress ?? 'local'}:${this.socket.remotePort ?? 0}`
  }

  /**
   * The session's scoped logger (session, remote, deviceId once known), made on first use: most
   * connections never log, and a flood of them should not build a logger each.
   */
  get logger(): Logger {
    this.scopedLogger ??= this.parentLogger.child({
      session: this.id,
      remote: this.remote,
      ...(this.identity ? { deviceId: this.identity.deviceId } : {}),
    })
    return this.scopedLogger
  }

  /** Logs with the session's scope, without building the scoped logger when `level` is off. */
  log(level: LogLevelName, message: string, meta?: Record<string, unknown>): void {
    if (this.parentLogger.isEnabled(level)) this.logger[level](message, meta)
  }

  debug(message: string, meta?: Record<string, unknown>): void {
    this.log('debug', message, meta)
  }

  get closed(): boolean {
    return this.state === 'closed'
  }

  get deviceId(): string | undefined {
    return this.identity?.deviceId
  }

  /**
   * Input after the close is dropped, never decoded nor held. A peer that keeps sending (the
   * body of a refused oversize frame, a flood) is cut off rather than read to the end.
   */
  private discard(bytes: number): void {
    this.discarded += bytes
    if (this.discarded > DISCARD_LIMIT) this.socket.destroy()
  }

  /**
   * The device closed its side. Between frames that is a clean close; inside a frame the
   * connection broke (a reset can surface as an end-of-stream too, depending on timing).
   */
  private onEnd(): void {
    const partial = this.decoder.partial
    if (partial > 0) this.debug('connection ended inside a frame', { bytes: partial })
    this.close(partial > 0 ? 'socket_error' : 'client_closed')
  }

  private onFrame(type: number, msgId: number, body: Buffer, length: number): boolean {
    this.stats.framesIn++
    this.stats.framesByType[type]!++
    switch (this._state) {
      case 'awaiting-login':
        this.options.dialect.beforeLogin(this, type, msgId, body, length)
        break
      case 'online':
        this.options.dialect.online(this, type, msgId, body, length)
        break
      default:
        // closed, or authenticating: reading is paused; a frame here is a bug, not input to act on
        return false
    }
    return this.keepReading()
  }

  private onFrameTooLarge(err: FrameTooLargeError): void {
    // [HT-1.3] Refused on the header alone: answer with the status in the length field, close.
    this.options.throttle.warn('frame_too_large', 'frame too large: refused at its header', {
      remote: this.remote,
      type: err.type,
      length: err.length,
      limit: this.options.maxFrameSize,
    })
    this.finalReply(err.msgId, Status.ILLEGAL_COMMAND_BODY)
    this.close('frame_too_large')
  }

  /**
   * Whether the decoder may deliver the next frame; pauses the socket if not. Reading stops while
   * the login is being settled and while `maxInflight` answers are owed — uplinks awaiting the
   * broker, and the answers queued behind them (backpressure reaches the device through TCP flow
   * control instead of a growing buffer here).
   */
  private keepReading(): boolean {
    const ok =
      this.input !== 'stopped' &&
      (this._state === 'awaiting-login' ||
        (this._state === 'online' && this.answers.length < this.options.maxInflight))
    if (!ok && this.input === 'reading' && this._state !== 'closed') {
      this.input = 'paused'
      this.socket.pause()
    }
    return ok
  }

  /** Resumes reading once what paused it has cleared. */
  private resumeReading(): void {
    if (
      this.input !== 'paused' ||
      this._state !== 'online' ||
      this.answers.length >= this.options.maxInflight
    )
      return
    this.input = 'reading'
    this.lastActivity = Date.now() // the device was not heard while unread (see keepaliveCheck)
    this.decoder.resume() // may close the session or pause again
    if (this.input === 'reading' && !this.closed) this.socket.resume()
  }

  /**
   * Reads nothing more from the device (graceful shutdown): what it already sent is finished and
   * acknowledged, then the gateway closes it.
   */
  stopReading(): void {
    if (this.input === 'reading' && !this.closed) {
      this.decoder.pause()
      this.socket.pause()
    }
    this.input = 'stopped'
  }

  // --- what the write path asks (OutputOwner) -------------------------------------------------

  get online(): boolean {
    return this._state === 'online'
  }

  /** @internal The device left what it was sent unread for `drainTimeout`. */
  slowConsumer(): void {
    this.logger.warn('device does not read what it is sent: closing it', {
      queued: this.socket.writableLength,
    })
    // Its unread data is discarded: destroy, not end (which would wait for it to drain).
    this.close('slow_consumer')
    this.socket.destroy()
  }

  // --- what frame handlers may do (HandlerContext) -------------------------------------------

  get throttle(): LogThrottle {
    return this.options.throttle
  }

  /** Largest body sent to this device: the gateway's limit, or its own if it has a smaller one. */
  get maxDownlinkSize(): number {
    let limit = this.options.maxDownlinkSize
    const own = this._identity?.downlink?.maxDownlinkSize
    if (own !== undefined && own < limit) limit = own
    const told = this._info?.maxDownlinkSize ?? this.options.dialect.maxDownlinkSize
    return told !== undefined && told < limit ? told : limit
  }

  /**
   * What the device said about itself after login: kept (the bridge shows it in the presence),
   * and its keepalive and read buffer applied from now on.
   */
  describe(info: DeviceInfo): void {
    if (this.state !== 'online') return
    const same = this._info !== undefined && JSON.stringify(this._info) === JSON.stringify(info)
    this._info = info
    if (same) return // told again: nothing new for the presence
    if (info.keepaliveMs !== undefined && info.keepaliveMs !== this.keepaliveMs) {
      this.keepaliveMs = info.keepaliveMs
      clearTimeout(this.timer)
      this.armKeepalive(this.keepaliveMs)
    }
    this.host.described?.(this)
  }

  /** Most members and elements a payload sent to this device may hold, if it has a limit. */
  get maxDownlinkMembers(): number | undefined {
    return this._identity?.downlink?.maxDownlinkMembers
  }

  get idCharset(): IdCharset {
    return this.options.idCharset
  }

  rejected(): void {
    this.stats.rejected++
  }

  truncated(): void {
    this.stats.truncated++
  }

  acknowledged(msgId: number): void {
    this.stats.deviceAcks++
    this.host.acknowledged?.(this, msgId)
  }

  checkLogin(): LoginGate {
    return this.options.gatekeeper.checkLogin(this)
  }

  authenticate(request: LoginRequest): AuthResult | Promise<AuthResult> {
    return this.host.authenticate(request, this.socket.remoteAddress ?? '')
  }

  awaitAuthentication(): void {
    this._state = 'authenticating' // reading pauses (keepReading) until login or refusal
  }

  loginFailed(): void {
    this.options.gatekeeper.loginFailed(this)
  }

  takesRaw(type: number): boolean {
    return this.host.takesRaw(type)
  }

  /** The msg_id of the last frame the gateway sent (a downlink just delivered). */
  get lastSentId(): number {
    return this.lastMsgId
  }

  /** [HT-1.5] The gateway's own ids: from 1, per connection, skipping 0 on wrap. */
  nextMsgId(): number {
    this.lastMsgId = nextMsgId(this.lastMsgId)
    return this.lastMsgId
  }

  /**
   * Writes a frame the gateway originates (a downlink, a PING, a login reply, a REDIRECT). Writes
   * within one event-loop turn are corked and leave in one syscall at its end. Returns false once
   * the connection can take no more.
   */
  write(frame: Buffer): boolean {
    return this.output.write(frame, true)
  }

  /**
   * [Rate limit] Whether the device may send one more message now; false means it exceeded its
   * rate and the message is answered QUOTA_LIMIT.
   */
  allowMessage(): boolean {
    if (this.options.messageRate <= 0) return true
    const now = Date.now()
    this.bucket ??= new TokenBucket(this.options.messageRate, this.options.messageBurst, now)
    if (this.bucket.take(now)) return true
    this.stats.throttled++
    return false
  }

  /**
   * Answers a frame of the device: RESPONSE with no body, `status` 0 = success, else the status in
   * the length field ([HT-2.7]). It goes after the answers owed for earlier requests (decision
   * 22), and may wait for the answers still to come (see Output.uncork).
   */
  reply(msgId: number, status: number): void {
    this.answers.answer(msgId, status, undefined, this.sendAnswer)
  }

  /** [HT-3.5] Acks a JSON ping and sends its pong, both in their turn among the answers. */
  pong(msgId: number, body: string): void {
    this.answers.answer(msgId, 0, body, this.sendAnswer)
  }

  /**
   * The last answer before the connection is closed: the answers ready before it are written,
   * then it; those still awaiting the broker are never sent (the device can only take their
   * uplinks as lost, as on any connection loss).
   */
  private finalReply(msgId: number, status: number): void {
    this.answers.flushReady(this.sendAnswer)
    this.sendAnswer(msgId, status, undefined)
  }

  /** Begins authentication; reading stays paused until the host settles the login. */
  login(msgId: number, identity: Identity): void {
    this._state = 'authenticating'
    this._identity = identity
    this.scopedLogger = undefined // the next log line carries the device id
    this.host.attach(this).then(
      () => this.loggedIn(msgId),
      (err: unknown) => {
        if (this.state !== 'authenticating') return
        this.log('warn', 'login could not be completed: broker unavailable', { error: String(err) })
        bump(this.stats.loginResults, 'broker_unavailable')
        this.writeLoginReply(msgId, Status.SERVER_ERROR)
        this.close('broker_unavailable')
      },
    )
  }

  private loggedIn(msgId: number): void {
    if (this.state !== 'authenticating') return // closed meanwhile (timeout, takeover, peer left)
    this._state = 'online'
    this._connectedAt = Date.now()
    this.stats.logins++
    bump(this.stats.loginResults, 'ok')
    this.stats.online++
    bump(this.stats.onlineByDialect, this.options.dialect.name)
    this.writeLoginReply(msgId, Status.SUCCESS)
    this.log('info', 'device online')
    this.host.loggedIn?.(this) // what was kept for it follows the login reply
    clearTimeout(this.timer)
    this.lastActivity = Date.now()
    this.armKeepalive(this.keepaliveMs)
    this.resumeReading()
  }

  /** Refuses the login ([HT-3.2]): the dialect's login reply with `status`, then close. */
  refuseLogin(msgId: number, status: number, reason: CloseReason): void {
    this.stats.loginFailures++
    bump(this.stats.loginResults, reason)
    this.writeLoginReply(msgId, status)
    this.close(reason)
  }

  private writeLoginReply(msgId: number, status: number): void {
    const reply = this.options.dialect.loginReply?.(msgId, status)
    if (reply !== undefined) this.write(reply)
  }

  /** Hands a device message to the host; answers the device when the host is done ([HT-4.5]). */
  uplink(
    msgId: number,
    kind: 'server' | 'direct' | 'broadcast',
    targetId: string,
    payloadJson: string,
  ): void {
    this._inflight++
    const ticket = this.answers.reserve(msgId)
    this.host.uplink(this, kind, targetId, payloadJson, (status) => this.uplinkDone(ticket, status))
  }

  /** Bytes as they came (raw framing), to the device's up topic; `body` is the caller's own copy. */
  uplinkBytes(msgId: number, body: Buffer): void {
    this._inflight++
    const ticket = this.answers.reserve(msgId)
    this.host.uplinkBytes(this, body, (status) => this.uplinkDone(ticket, status))
  }

  /** [HT-5.6] The same for a frame of a custom command type; `body` is the caller's own copy. */
  uplinkRaw(msgId: number, type: number, body: Buffer): void {
    this._inflight++
    const ticket = this.answers.reserve(msgId)
    this.host.uplinkRaw(this, type, body, (status) => this.uplinkDone(ticket, status))
  }

  private uplinkDone(ticket: number, status: number): void {
    this._inflight--
    if (status === 0) {
      this.stats.published++
      this._uplinks++
    } else this.stats.rejected++
    if (this.state !== 'online') return
    this.answers.settle(ticket, status, this.sendAnswer)
    this.resumeReading()
  }

  /**
   * Sends a JSON_MESSAGE, BROADCAST or custom frame ([HT-5.6]) to the device. Refused, never
   * truncated, when the body is over the device's downlink limit ([HT-2.6]) or the device is not
   * reading what it was sent.
   */
  deliver(type: number, body: Buffer | string, payload?: unknown): DeliverResult {
    if (this.state !== 'online') return 'not_online'
    if (this.options.dialect.translate !== undefined)
      return this.deliverTranslated(this.options.dialect.translate(type, body, payload))
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    if (size > this.maxDownlinkSize) return 'too_large'
    const queued = this.socket.writableLength
    if (queued > this.options.maxWriteQueue) return 'queue_full'
    // Broadcasts get half the write queue: however many arrive, they never push out the
    // device's own downlinks.
    if (type === Cmd.BROADCAST && queued > this.options.maxWriteQueue / 2) return 'queue_full'
    const id = this.nextMsgId()
    if (typeof body === 'string') {
      this.write(encodeTextFrame(type, id, body))
    } else {
      // A shared body (a broadcast) is written after its own header, uncopied; the writes are
      // corked, so both leave in one syscall.
      const header = Buffer.allocUnsafe(HEADER_SIZE)
      writeHeader(header, 0, type, id, body.length)
      this.write(header)
      this.output.append(body)
    }
    this._downlinks++
    return 'ok'
  }

  /** A message in the dialect's own frames: all of them are sent, or none. */
  private deliverTranslated(translated: Translated): DeliverResult {
    if (!translated.ok) return 'unsupported'
    const limit = this.maxDownlinkSize
    for (const body of translated.bodies) if (Buffer.byteLength(body) > limit) return 'too_large'
    if (this.socket.writableLength > this.options.maxWriteQueue) return 'queue_full'
    const { type, bodies } = translated
    const encode = this.options.dialect.encode
    for (const body of bodies)
      this.write(
        encode ? encode(type, this.nextMsgId(), body) : encodeTextFrame(type, this.nextMsgId(), body),
      )
    this._downlinks++
    return 'ok'
  }

  /** Whether the device acknowledges each frame it is sent (at-least-once delivery needs it). */
  get acknowledgesDownlinks(): boolean {
    return this.options.dialect.acknowledgesDownlinks
  }

  /** [HT-5.5] Sends the dialect's REDIRECT (for HyperTCP the JSON form of [HT-2.8]) and closes. */
  redirect(server: string, port: number): void {
    if (this.state === 'closed') return
    const redirect = this.options.dialect.redirect
    if (redirect === undefined) {
      this.log('warn', 'redirect ignored: the gateway dials this device, it cannot be sent elsewhere')
      return
    }
    this.write(redirect(this.nextMsgId(), server, port))
    this.close('redirected')
  }

  private armKeepalive(ms: number): void {
    if (this.options.dialect.ping === undefined) return // TCP keepalive only
    this.timer = setTimeout(onKeepaliveTimer, ms, this)
    this.timer.unref()
  }

  /** @internal [HT-3.4] Runs when the keepalive timer fires; re-arms itself lazily. */
  keepaliveCheck(): void {
    if (this.state !== 'online') return
    const now = Date.now()
    const keepalive = this.keepaliveMs
    if (this.input === 'paused') {
      // The gateway stopped reading the device (its uplinks await the broker): what it sent since,
      // PINGs included, is unread in the socket. Its silence is the gateway's, not the device's.
      this.lastActivity = now
      this.pingSentAt = 0
      this.armKeepalive(keepalive)
      return
    }
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
    this.write(this.options.dialect.ping!(this.nextMsgId()))
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
    this._state = 'closed'
    this._closeReason = reason
    clearTimeout(this.timer)
    this.output.close()
    this.answers.clear()
    if (wasOnline) {
      this.stats.online--
      this.stats.onlineByDialect[this.options.dialect.name]!--
    }
    this.stats.closes[reason] = (this.stats.closes[reason] ?? 0) + 1
    if (wasOnline || this.identity !== undefined) this.log('info', 'connection closed', { reason })
    else this.debug('connection closed', { reason })
    if (!this.socket.destroyed) {
      if (ABRUPT.has(reason)) {
        // The peer misbehaved: read nothing more from it (an oversize frame's body, a flood) and
        // let go of the socket as soon as the final answer has been handed to the OS.
        this.socket.pause()
        this.socket.end(() => this.socket.destroy())
      } else {
        // A well-behaved device: it reads its last frame (a REDIRECT) and closes in turn.
        this.socket.end()
        this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS)
        this.lingerTimer.unref()
      }
    }
    this.host.detach(this, reason)
  }
}

function onKeepaliveTimer(session: Session): void {
  session.keepaliveCheck()
}
