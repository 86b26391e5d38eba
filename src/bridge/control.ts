import { parseHostPort } from '../config/kinds.js'
import type { GatewayConfig } from '../config/settings.js'
import { GatewayError } from '../errors.js'
import type { Logger, LogThrottle } from '../log.js'
import { parseControl } from '../protocol/messages.js'
import type { Session } from '../session/session.js'
import { bump, type GatewayStats } from '../stats.js'

/** How long a takeover by another instance waits for that instance's "online" ({@link ControlTopic}). */
export const TAKEOVER_CONFIRM_MS = 5000

/** A device logged in here, as the control topic needs it. */
export interface ControlledDevice {
  readonly session: Session
  /** Its control topic, for the log. */
  readonly control: string
  /** When it was attached (ms): a takeover older than this login is ignored. */
  readonly at: number
}

/** What the control topic's handling asks of the bridge. */
export interface ControlHost<D extends ControlledDevice> {
  readonly gatewayId: string
  /** Whether this instance keeps the device's messages (and so reads its presence). */
  holds(deviceId: string): boolean
  /** Whether the device is logged in here. */
  serves(deviceId: string): boolean
  /** Publishes the device's retained offline presence `state`. */
  publishOffline(device: D, state: Record<string, unknown>): void
}

/**
 * [HT-5.5] What comes on a device's control topic (and, from gateways, its peer topic): a kick, a
 * redirect to an allowed target, or another instance's takeover notice ([HT-3.3]), which closes
 * the device here and waits for that instance to announce it.
 */
export class ControlTopic<D extends ControlledDevice> {
  /** Devices another instance took over, until it announces them (by id: that gateway, the timer). */
  private readonly takenOver = new Map<string, { readonly gateway: string; readonly timer: NodeJS.Timeout }>()
  /** How this instance's takeover notices begin. */
  private readonly ownTakeover: Buffer
  /** Where a redirect may send a device, from the list it was made of (a reload changes it). */
  private redirectAllow: { readonly from: readonly string[]; readonly keys: ReadonlySet<string> } | undefined

  /**
   * @param ownTakeoverText how this instance's takeover notices begin
   */
  constructor(
    private readonly host: ControlHost<D>,
    private readonly config: GatewayConfig,
    ownTakeoverText: string,
    private readonly logger: Logger,
    private readonly stats: GatewayStats,
    private readonly throttle: LogThrottle,
  ) {
    this.ownTakeover = Buffer.from(ownTakeoverText)
  }

  /**
   * A control message for `device`; takeovers are believed (`takeovers`) unless peer topics carry
   * them and this came on the control topic.
   */
  onMessage(device: D, message: Buffer, takeovers: boolean): void {
    // Every login announces itself here, and this instance hears its own announcement back
    // (in-process, its subscription exists before the announcement is routed): recognise it by
    // its first bytes instead of parsing it.
    if (
      message.length > this.ownTakeover.length &&
      message.subarray(0, this.ownTakeover.length).equals(this.ownTakeover)
    ) {
      return
    }
    const control = parseControl(message)
    const session = device.session
    switch (control.action) {
      case 'kick':
        session.logger.info('kicked via control topic')
        session.close('kicked')
        return
      case 'redirect': {
        const target = { server: control.server, port: control.port }
        // A redirect sends the device, and its token, elsewhere: only to a known target.
        if (!this.mayRedirect(control.server, control.port)) {
          bump(this.stats.controlRefused, 'redirect_not_allowed')
          this.throttle.warn('redirect_not_allowed', 'redirect refused: target not in redirectAllow', {
            deviceId: session.deviceId,
            ...target,
          })
          return
        }
        session.logger.info('redirected via control topic', target)
        session.redirect(control.server, control.port)
        return
      }
      case 'takeover':
        if (control.gateway === this.host.gatewayId) return // our own announcement
        if (!takeovers) {
          bump(this.stats.controlRefused, 'takeover_not_believed')
          this.throttle.warn('takeover_not_believed', 'takeover notice on the control topic ignored', {
            deviceId: session.deviceId,
            gateway: control.gateway,
            reason: 'topics.peer is set: gateways announce takeovers on the peer topic',
          })
          return
        }
        if (control.at < device.at) return // older than this login: the device has moved on since
        session.logger.info('taken over by another gateway', { gateway: control.gateway })
        session.close('takeover')
        this.awaitTakeover(device, control.gateway)
        return
      case 'invalid':
        this.logger.warn('control message ignored', { topic: device.control, reason: control.reason })
        return
      default: {
        const never: never = control
        throw new GatewayError('HT_ERR_INTERNAL', `unhandled control ${JSON.stringify(never)}`)
      }
    }
  }

  /** The device's presence says it is online at `gateway`: a takeover by that one is confirmed. */
  online(deviceId: string, gateway: unknown): void {
    const pending = this.takenOver.get(deviceId)
    if (pending === undefined || gateway !== pending.gateway) return
    clearTimeout(pending.timer)
    this.takenOver.delete(deviceId)
    bump(this.stats.takeovers, 'confirmed')
  }

  /** Shutting down: no takeover is awaited any more. */
  stop(): void {
    for (const pending of this.takenOver.values()) clearTimeout(pending.timer)
  }

  /**
   * [HT-3.3] The device left for `gateway`, which announces it online next (its presence). If that
   * does not come within {@link TAKEOVER_CONFIRM_MS} — a takeover notice from an instance that then
   * died, or one forged — the retained presence would say "online" for good: it is set offline
   * (`takeover_unconfirmed`). Needs the device's status topic: held devices have it (store-and-
   * forward on).
   */
  private awaitTakeover(device: D, gateway: string): void {
    const id = device.session.deviceId!
    if (!this.host.holds(id)) return
    clearTimeout(this.takenOver.get(id)?.timer)
    const timer = setTimeout(() => {
      this.takenOver.delete(id)
      if (this.host.serves(id)) return // back here meanwhile
      bump(this.stats.takeovers, 'unconfirmed')
      this.logger.warn('taken over, but the other gateway never announced the device: marked offline', {
        deviceId: id,
        gateway,
      })
      this.host.publishOffline(device, {
        online: false,
        at: Date.now(),
        reason: 'takeover_unconfirmed',
        gateway: this.host.gatewayId,
        by: gateway,
      })
    }, TAKEOVER_CONFIRM_MS)
    timer.unref()
    this.takenOver.set(id, { gateway, timer })
  }

  /** `redirectAllow`, else `overflowRedirect` (the peer logins overflow to), else nothing. */
  private mayRedirect(host: string, port: number): boolean {
    const list = this.config.redirectAllow
    if (this.redirectAllow?.from !== list) {
      const allowed = list.length > 0 ? list : [this.config.overflowRedirect ?? '']
      const keys = new Set(
        allowed.flatMap((v) => {
          const hp = parseHostPort(v)
          return hp === undefined ? [] : [hostPortKey(hp.host, hp.port)]
        }),
      )
      this.redirectAllow = { from: list, keys }
    }
    return this.redirectAllow.keys.has(hostPortKey(host, port))
  }
}

/** A redirect target as compared with `redirectAllow`: host names are case-insensitive. */
function hostPortKey(host: string, port: number): string {
  return `${host.toLowerCase()}:${port}`
}
