/**
 * Counters of what the gateway did, for `gateway.stats()`, the admin API's /metrics and /stats,
 * and the shutdown log line. Plain numbers, bumped in place: no allocation, no label lookup on the
 * hot path (the metrics are read from here when they are scraped).
 */
export interface GatewayStats {
  /** Connections accepted on the HyperTCP listeners. */
  connections: number
  /** Connections open right now (logged in or not), as of the last `gateway.stats()`. */
  open: number
  /** Devices currently logged in. */
  online: number
  /** The same by dialect (`hypertcp`, `blynk`). */
  onlineByDialect: Record<string, number>
  logins: number
  loginFailures: number
  /** Login outcomes: `ok`, or the close reason of a refused one (`invalid_token`, …). */
  loginResults: Record<string, number>
  framesIn: number
  /** Frames received, by command type (index = type). */
  framesByType: number[]
  framesOut: number
  /** Uplinks (server, device-to-device, broadcast) the broker accepted and the device was acked for. */
  published: number
  /** Uplinks answered with an error status (bad body, broker refused or unreachable, …). */
  rejected: number
  /** A dialed device's lines cut to maxFrameSize (published cut). */
  truncated: number
  /** Uplinks the broker refused (MQTT 5 PUBACK reason 0x80 or more); counted in `rejected` too. */
  refusedByBroker: number
  /** Subscriptions the broker refused (SUBACK failure): their messages never reach the gateway. */
  subscriptionsRefused: number
  /** Subscriptions a broker session kept from before that the gateway no longer wanted: ended. */
  subscriptionsLeftOver: number
  /** MQTT messages delivered to devices as frames. */
  delivered: number
  /** MQTT messages not delivered to a device: not JSON, over the device's limit, or queue full. */
  dropped: number
  /** The same by why: `not_json`, `too_large`, `too_many_members`, `not_reading`, `oversize` (refused unread from the broker). */
  droppedBy: Record<string, number>
  /** RESPONSE frames the devices sent to acknowledge the gateway's frames ([HT-3.6]). */
  deviceAcks: number
  /** Close reasons, counted. */
  closes: Record<string, number>
  /** Connections refused on accept, before any byte was read, by reason. */
  refused: Record<string, number>
  /** Control-topic commands not obeyed, by reason (`redirect_not_allowed`). */
  controlRefused: Record<string, number>
  /** Logins held back because their device id logged in too often (takeover flapping). */
  loginsDelayed: number
  /** Uplinks answered QUOTA_LIMIT by the per-device message rate. */
  throttled: number
  /** Seconds from a device's frame to the broker's acknowledgement of its publish. */
  publishAck: BucketCounts
  /** Downlinks put in the store (store-and-forward, at-least-once). */
  kept: number
  /** Kept downlinks the device acknowledged (and so left the store). */
  keptAcknowledged: number
  /** Messages in the store, and their bytes, as of the last `gateway.stats()`. */
  keptNow: number
  keptBytes: number
  /** Kept messages handed over to the instance a device moved to. */
  handedOver: number
  /**
   * Devices closed here by another instance's takeover, by what followed: `confirmed` (that
   * instance announced the device online) or `unconfirmed` (it did not in time: marked offline).
   */
  takeovers: Record<string, number>
}

/** Upper bounds of {@link GatewayStats.publishAck}'s buckets, seconds. */
export const PUBLISH_ACK_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** A histogram as counts per bucket (not cumulative), for a hot path: one comparison loop per value. */
export class BucketCounts {
  /** counts[i]: values ≤ bounds[i] and above bounds[i - 1]; the last: above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    let i = 0
    const n = this.bounds.length
    while (i < n && value > this.bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }

  toJSON(): Record<string, unknown> {
    return { count: this.count, sum: this.sum }
  }
}

/** Adds one to `record[key]`. */
export function bump(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1
}

export function createStats(): GatewayStats {
  return {
    connections: 0,
    open: 0,
    online: 0,
    truncated: 0,
    onlineByDialect: {},
    logins: 0,
    loginFailures: 0,
    loginResults: {},
    framesIn: 0,
    framesByType: new Array(256).fill(0),
    framesOut: 0,
    published: 0,
    rejected: 0,
    refusedByBroker: 0,
    subscriptionsRefused: 0,
    subscriptionsLeftOver: 0,
    delivered: 0,
    dropped: 0,
    droppedBy: {},
    deviceAcks: 0,
    closes: {},
    refused: {},
    controlRefused: {},
    loginsDelayed: 0,
    throttled: 0,
    publishAck: new BucketCounts(PUBLISH_ACK_BUCKETS),
    kept: 0,
    keptAcknowledged: 0,
    keptNow: 0,
    keptBytes: 0,
    handedOver: 0,
    takeovers: {},
  }
}
