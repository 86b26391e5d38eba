import type { LogThrottle } from '../log.js'
import { countMembers, parseDownlink } from '../protocol/messages.js'
import { type DeliverResult, isSettled, type Session } from '../session/session.js'
import { bump, type GatewayStats } from '../stats.js'

/** A message from the broker made ready for a device: the frame's body, and its parsed payload. */
export interface Readied {
  readonly body: Buffer | string
  readonly payload: unknown
}

/**
 * What reaches a device from the broker, checked and counted: a down-topic or broadcast message
 * read (dropped when it is not JSON; a `from` not believed reads `server`), then sent within the
 * device's own limits. Every message not delivered is counted by why (`droppedBy`) and logged, a
 * line per kind at most every 10 s: one oversize broadcast would otherwise log once per device.
 */
export class ToDevice {
  /**
   * @param broadcastTopic named in the warning about a replaced `from` on a broadcast
   */
  constructor(
    private readonly stats: GatewayStats,
    private readonly throttle: LogThrottle,
    private readonly broadcastTopic: string,
  ) {}

  /**
   * [HT-5.2] A down-topic message for `deviceId`, or undefined (dropped: not JSON). `trusted`:
   * whether its `from` is believed.
   */
  read(deviceId: string, message: Buffer, trusted: boolean): Readied | undefined {
    const downlink = parseDownlink(message, trusted)
    if (downlink.ok) {
      if (downlink.replaced) this.fromReplaced('down', deviceId)
      return downlink
    }
    this.drop('not_json')
    this.throttle.warn('downlink_invalid', 'downlink dropped', {
      deviceId,
      reason: downlink.reason,
      bytes: message.length,
    })
    return undefined
  }

  /** [HT-5.3] A broadcast, read once for every device, with who sent it; undefined: dropped (not JSON). */
  readBroadcast(message: Buffer, trusted: boolean): (Readied & { readonly from?: string }) | undefined {
    const downlink = parseDownlink(message, trusted)
    if (!downlink.ok) {
      this.drop('not_json')
      this.throttle.warn('broadcast_invalid', 'broadcast dropped', {
        reason: downlink.reason,
        bytes: message.length,
      })
      return undefined
    }
    if (downlink.replaced) this.fromReplaced('broadcast')
    return downlink
  }

  /** `payload`: the parsed payload of a JSON message, counted against the device's member limit. */
  deliver(session: Session, type: number, body: Buffer | string, payload?: unknown): void {
    if (payload !== undefined && !this.withinLimits(session, body, payload)) return
    this.count(session, session.deliver(type, body, payload))
  }

  /**
   * Whether a JSON message fits the device's own limits (its member limit; the size is the
   * session's to check as it sends). One that does not is dropped, counted and logged.
   */
  withinLimits(session: Session, body: Buffer | string, payload: unknown): boolean {
    const maxMembers = session.maxDownlinkMembers
    if (maxMembers === undefined || session.state !== 'online') return true
    const members = countMembers(payload, maxMembers)
    if (members <= maxMembers) return true
    this.drop('too_many_members')
    this.throttle.warn('deliver_too_many_members', 'message to device dropped', {
      deviceId: session.deviceId,
      reason: `more than ${maxMembers} members and elements (the device's maxDownlinkMembers)`,
      bytes: typeof body === 'string' ? Buffer.byteLength(body) : body.length,
    })
    return false
  }

  /** A kept message sent, or not: one not written now (not reading, not online yet) stays kept. */
  countKept(session: Session, result: DeliverResult): void {
    if (isSettled(result)) this.count(session, result)
  }

  /** What the session made of a message: delivered, or dropped (and why). */
  count(session: Session, result: DeliverResult): void {
    if (result === 'ok') {
      this.stats.delivered++
      return
    }
    if (result === 'not_online') return // still logging in, or gone: not its message yet
    this.drop(result === 'queue_full' ? 'not_reading' : result)
    this.throttle.warn(`deliver_${result}`, 'message to device dropped', {
      deviceId: session.deviceId,
      reason:
        result === 'too_large'
          ? `over the ${session.maxDownlinkSize}-byte downlink limit`
          : result === 'unsupported'
            ? `not a message a ${session.dialect} device can be sent`
            : 'device is not reading',
    })
  }

  /** A message not delivered, and why (`not_json`, `too_large`, `not_reading`, `broadcast_rate` …). */
  drop(why: string): void {
    this.stats.dropped++
    bump(this.stats.droppedBy, why)
  }

  /**
   * A `from` naming someone on a topic anyone may write, with peer topics on: it reads `server`
   * (counted; a warning at most every 10 s, for applications that still name a sender).
   */
  private fromReplaced(topic: 'down' | 'broadcast', deviceId?: string): void {
    bump(this.stats.controlRefused, 'from_not_believed')
    this.throttle.warn('from_not_believed', 'a "from" replaced by "server": only gateways name a sender', {
      topic: topic === 'down' ? 'down' : this.broadcastTopic,
      deviceId: deviceId ?? null,
      reason: 'topics.peer is set: device-to-device messages and broadcasts come on the peer topics',
    })
  }
}
