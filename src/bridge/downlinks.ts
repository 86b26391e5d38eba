/**
 * Store-and-forward and at-least-once delivery to devices (PROTOCOL decision 33): what the bridge
 * does with the downlink store. A message for a device this instance holds is kept; sent when the
 * device is online; removed once the device acknowledges it (at-least-once) or once it is written
 * to the device (at-most-once). What a closed connection had not acknowledged is sent again, in
 * order, at the device's next login here.
 */
import type { DownlinkStore, Eviction, Kept } from '../delivery/store.js'
import type { LogThrottle } from '../log.js'
import { Cmd } from '../protocol/constants.js'
import { type DeliverResult, isSettled, type Session } from '../session/session.js'
import { bump, type GatewayStats } from '../stats.js'
import type { AckLater } from './port.js'

export type DownlinkDelivery = 'at-least-once' | 'at-most-once'

export class Downlinks {
  /** Per connection: msg_id of a frame sent → the kept message it carried. */
  private readonly inFlight = new WeakMap<Session, Map<number, Kept>>()
  readonly atLeastOnce: boolean
  /** Handed to the port when a message was kept: its PUBACK waits for the disk. */
  readonly ackLater: AckLater | undefined

  constructor(
    readonly store: DownlinkStore,
    delivery: DownlinkDelivery,
    private readonly stats: GatewayStats,
  ) {
    this.atLeastOnce = delivery === 'at-least-once'
    this.ackLater = store.durable ? (ack) => store.whenWritten(ack) : undefined
  }

  /** Keeps a message (the JSON_MESSAGE body) for a device. */
  keep(deviceId: string, body: Buffer | string): Kept {
    this.stats.kept++
    return this.store.keep(deviceId, body, Date.now())
  }

  /**
   * Sends a kept message to the device's connection. Sent, it is in flight until acknowledged
   * (at-least-once) or gone (at-most-once). Not sent (the device is not reading, or not online
   * yet), it stays kept for the next login — unless it can never be sent ({@link isSettled}).
   */
  send(session: Session, kept: Kept): DeliverResult {
    const result = session.deliver(Cmd.JSON_MESSAGE, kept.body)
    if (result === 'ok') {
      // A device that acknowledges nothing (Blynk) gets its kept messages at most once.
      if (this.atLeastOnce && session.acknowledgesDownlinks)
        this.flights(session).set(session.lastSentId, kept)
      else this.store.remove(kept)
    } else if (isSettled(result)) {
      this.store.remove(kept)
    }
    return result
  }

  /**
   * The device logged in: what is kept for it goes out, oldest first, before anything new. Stops at
   * the first message that cannot be written (the rest stays kept); returns the results.
   */
  replay(session: Session, deviceId: string, onResult: (result: DeliverResult) => void): void {
    this.store.expire(Date.now())
    for (const kept of [...this.store.pending(deviceId)]) {
      const result = this.send(session, kept)
      onResult(result)
      if (!isSettled(result)) return
    }
  }

  /** [HT-3.6] The device acknowledged frame `msgId`: the message it carried leaves the store. */
  acknowledged(session: Session, msgId: number): void {
    const flights = this.inFlight.get(session)
    const kept = flights?.get(msgId)
    if (kept === undefined) return
    flights!.delete(msgId)
    this.store.remove(kept)
    this.stats.keptAcknowledged++
  }

  /** Everything kept for the device, taken out of the store (it moves to another instance). */
  handOver(deviceId: string): Kept[] {
    return this.store.take(deviceId)
  }

  /** Counts a message that left the store unacknowledged; `throttle` logs it. */
  evicted(kept: Kept, why: Eviction, throttle: LogThrottle): void {
    this.stats.dropped++
    bump(this.stats.droppedBy, `kept_${why}`)
    throttle.warn(`kept_${why}`, 'kept downlink dropped', {
      deviceId: kept.deviceId,
      reason:
        why === 'expired'
          ? 'waited longer than offlineQueueTtl'
          : why === 'queue_full'
            ? 'over offlineQueueMessages or offlineQueueBytes for the device'
            : 'over offlineStoreBytes for all devices',
      bytes: kept.bytes,
    })
  }

  private flights(session: Session): Map<number, Kept> {
    let flights = this.inFlight.get(session)
    if (flights === undefined) {
      flights = new Map()
      this.inFlight.set(session, flights)
    }
    return flights
  }
}
