import { openFilesLimit } from '../adapters/fd-limit.js'
import { parseHostPort } from '../config/kinds.js'
import type { GatewayConfig } from '../config/settings.js'
import { IpGuard } from '../limits/ip-guard.js'
import type { Logger } from '../log.js'
import { Status } from '../protocol/constants.js'
import type { Session } from '../session/session.js'
import type { Gatekeeper, LoginGate } from '../session/types.js'

/** How often forgotten per-IP state is swept. */
const SWEEP_MS = 30_000

const PROCEED: LoginGate = { action: 'proceed' }

/**
 * Who may connect and log in: the per-IP guard (allow and deny lists, connection rates, bans after
 * repeated login failures), the number of connections held (`maxConnections`, from the open-files
 * limit by default), and draining at shutdown ([HT-6.4]: past the limit or while draining, a LOGIN
 * is redirected to `overflowRedirect`, else refused with QUOTA_LIMIT).
 */
export class Admission implements Gatekeeper {
  readonly guard: IpGuard
  readonly maxConnections: number
  /** Connections taken at all: past it they are closed on accept, to keep file descriptors. */
  readonly hardLimit: number
  private readonly overflow: { host: string; port: number } | undefined
  private readonly sweeper: NodeJS.Timeout
  private draining = false

  /** @param open the connections held right now */
  constructor(
    private readonly config: GatewayConfig,
    private readonly logger: Logger,
    private readonly open: () => number,
  ) {
    this.guard = new IpGuard({
      connectionRate: config.ipConnectionRate,
      connectionBurst: config.ipConnectionBurst,
      failureLimit: config.loginFailureLimit,
      failureWindowMs: config.loginFailureWindow * 1000,
      banMs: config.loginBanTime * 1000,
      allow: config.allowCidrs,
      deny: config.denyCidrs,
      exempt: config.rateLimitExempt,
      maxTracked: 100_000,
    })
    this.sweeper = setInterval(() => this.guard.sweep(Date.now()), SWEEP_MS)
    this.sweeper.unref()
    const fdLimit = openFilesLimit()
    // The embedded broker's connections come out of the same open files.
    const brokerShare = config.mqttUrl === null ? config.maxBrokerConnections : 0
    this.maxConnections = maxConnectionsOf(config.maxConnections, fdLimit, brokerShare)
    if (fdLimit !== undefined && this.maxConnections + 64 > fdLimit) {
      logger.warn(
        `maxConnections (${this.maxConnections}) is above what the open-files limit (${fdLimit}) allows: ` +
          'the OS will drop connections past it silently; raise `ulimit -n` or lower maxConnections',
      )
    }
    // Above maxConnections, connections are still taken (their LOGIN is redirected or refused with
    // a status); past this margin they are closed at once.
    this.hardLimit = this.maxConnections + Math.max(64, Math.ceil(this.maxConnections / 100))
    this.overflow = config.overflowRedirect === null ? undefined : parseHostPort(config.overflowRedirect)
  }

  checkLogin(session: Session): LoginGate {
    if (this.guard.isBanned(session.socket.remoteAddress ?? '', Date.now())) {
      return { action: 'refuse', status: Status.QUOTA_LIMIT, reason: 'rate_limited' }
    }
    if (this.draining || this.open() > this.maxConnections) {
      if (this.overflow !== undefined) {
        return { action: 'redirect', server: this.overflow.host, port: this.overflow.port }
      }
      return { action: 'refuse', status: Status.QUOTA_LIMIT, reason: 'rate_limited' }
    }
    return PROCEED
  }

  loginFailed(session: Session): void {
    const ip = session.socket.remoteAddress ?? ''
    if (this.guard.loginFailed(ip, Date.now())) {
      this.logger.warn('address banned after repeated login failures', {
        remote: ip,
        seconds: this.config.loginBanTime,
      })
    }
  }

  /** Shutting down: every LOGIN from now on goes to the peer, or is refused. */
  drain(): void {
    this.draining = true
    clearInterval(this.sweeper)
  }
}

/**
 * `maxConnections`, or by default what the open-files limit leaves: 300 for the gateway's own
 * descriptors, and `brokerShare` for an embedded broker's connections.
 */
export function maxConnectionsOf(
  maxConnections: number | null,
  fdLimit: number | undefined,
  brokerShare: number,
): number {
  return maxConnections ?? (fdLimit === undefined ? 50_000 : Math.max(100, fdLimit - 300 - brokerShare))
}
