import { connect, type Socket } from 'node:net'
import type { DialOutEntry } from '../config/dial-out.js'
import { type Logger, LogThrottle } from '../log.js'
import type { Session } from '../session/session.js'
import { Backoff } from './broker-link/backoff.js'

/** Where a dialed device is: being dialed, connected, or waiting for the next try. */
export type DialState = 'connecting' | 'connected' | 'backoff' | 'stopped'

/** A dialed device as the admin API lists it. */
export interface DialOutView {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly framing: DialOutEntry['framing']
  readonly state: DialState
  /** When it entered that state (ISO 8601). */
  readonly since: string
  /** When the next connection attempt is due (ISO 8601), in `backoff`. */
  readonly nextTry: string | null
  /** Connection attempts since it was last logged in, the current one included. */
  readonly attempts: number
  /** Why the last connection ended or failed. */
  readonly lastError: string | null
  /** Whether it is logged in (its presence says online). */
  readonly online: boolean
}

/** First and largest delay between attempts, ms (each drawn between half and all of the step). */
export const DIAL_BACKOFF_FIRST_MS = 1000
export const DIAL_BACKOFF_CAP_MS = 60_000
/** TCP keepalive probes start after this much idle time: a device gone silently is noticed. */
const TCP_KEEPALIVE_MS = 30_000

interface Target {
  readonly entry: DialOutEntry
  readonly backoff: Backoff
  state: DialState
  since: number
  nextTry: number
  attempts: number
  lastError: string | null
  socket: Socket | undefined
  session: Session | undefined
  timer: NodeJS.Timeout | undefined
}

/**
 * Devices that are TCP servers, dialed by the gateway (PROTOCOL decision 36): each is connected to,
 * handed to `open` (which makes its session), and dialed again while it is away, with exponential
 * backoff and jitter ({@link DIAL_BACKOFF_FIRST_MS}, {@link DIAL_BACKOFF_CAP_MS}); a connection
 * attempt has `connectTimeout`, a connection has TCP keepalive.
 */
export class DialOut {
  private readonly targets: Target[]
  private readonly throttle: LogThrottle
  private stopped = false

  constructor(
    entries: readonly DialOutEntry[],
    private readonly logger: Logger,
    private readonly open: (entry: DialOutEntry, socket: Socket) => Session,
  ) {
    this.throttle = new LogThrottle(logger)
    this.targets = entries.map((entry) => ({
      entry,
      backoff: new Backoff(DIAL_BACKOFF_FIRST_MS, DIAL_BACKOFF_CAP_MS),
      state: 'connecting',
      since: Date.now(),
      nextTry: 0,
      attempts: 0,
      lastError: null,
      socket: undefined,
      session: undefined,
      timer: undefined,
    }))
  }

  start(): void {
    for (const t of this.targets) this.dial(t)
  }

  /** No more attempts; connections being made are dropped (connected ones close with the gateway). */
  stop(): void {
    this.stopped = true
    for (const t of this.targets) {
      clearTimeout(t.timer)
      if (t.state === 'connecting') t.socket?.destroy()
      this.enter(t, 'stopped')
    }
  }

  list(): DialOutView[] {
    return this.targets.map((t) => ({
      id: t.entry.id,
      host: t.entry.host,
      port: t.entry.port,
      framing: t.entry.framing,
      state: t.state,
      since: new Date(t.since).toISOString(),
      nextTry: t.state === 'backoff' ? new Date(t.nextTry).toISOString() : null,
      attempts: t.attempts,
      lastError: t.lastError,
      online: t.session?.online ?? false,
    }))
  }

  private dial(t: Target): void {
    if (this.stopped) return
    const { host, port, connectTimeout } = t.entry
    t.attempts++
    this.enter(t, 'connecting')
    const socket = connect({ host, port })
    t.socket = socket
    socket.setTimeout(connectTimeout * 1000, () =>
      socket.destroy(new Error(`no connection within ${connectTimeout} s`)),
    )
    socket.once('connect', () => {
      if (selfConnected(socket)) {
        // Nothing listens there, and the kernel gave the attempt the port it dialed as its own
        // source (TCP simultaneous open): the gateway would be its own "device", echoing itself.
        socket.destroy(
          Object.assign(new Error('connected to itself: nothing listens there'), { code: 'ESELFCONNECT' }),
        )
        return
      }
      socket.setTimeout(0)
      socket.setKeepAlive(true, TCP_KEEPALIVE_MS)
      this.enter(t, 'connected')
      this.logger.info('dialed device connected', { deviceId: t.entry.id, host, port })
      t.session = this.open(t.entry, socket)
    })
    // Every error, not the first only: an unhandled second one would end the process.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      t.lastError = err.code ?? err.message
    })
    socket.once('close', () => this.closed(t))
  }

  private closed(t: Target): void {
    const session = t.session
    t.socket = undefined
    t.session = undefined
    if (session !== undefined) {
      t.lastError = session.closeReason ?? t.lastError
      // It was logged in: the next loss starts again from the first step.
      if (session.connectedAt > 0) {
        t.backoff.reset()
        t.attempts = 0
      }
    }
    if (this.stopped) return
    const delay = t.backoff.next()
    t.nextTry = Date.now() + delay
    this.enter(t, 'backoff')
    const meta = { deviceId: t.entry.id, host: t.entry.host, port: t.entry.port, error: t.lastError }
    this.throttle.warn(`dial_${t.entry.id}`, 'dialed device away: trying again', {
      ...meta,
      retryInMs: Math.round(delay),
    })
    t.timer = setTimeout(() => this.dial(t), delay)
    t.timer.unref()
  }

  private enter(t: Target, state: DialState): void {
    t.state = state
    t.since = Date.now()
  }
}

/**
 * Whether a connection is to itself: a local port dialed while nothing listens on it can be given
 * that same port as its source, and Linux then connects the socket to itself.
 */
export function selfConnected(socket: Socket): boolean {
  return socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress
}
