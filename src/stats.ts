/**
 * Counters of what the gateway did, for `gateway.stats()`, the periodic stats topic and the
 * shutdown log line. Plain numbers, bumped in place: no allocation on the hot path.
 */
export interface GatewayStats {
  /** Connections accepted on the HyperTCP listeners. */
  connections: number
  /** Connections open right now (logged in or not), as of the last `gateway.stats()`. */
  open: number
  /** Devices currently logged in. */
  online: number
  logins: number
  loginFailures: number
  framesIn: number
  framesOut: number
  /** Uplinks (server, device-to-device, broadcast) the broker accepted and the device was acked for. */
  published: number
  /** Uplinks answered with an error status (bad body, broker refused or unreachable, …). */
  rejected: number
  /** Uplinks the broker refused (MQTT 5 PUBACK reason 0x80 or more); counted in `rejected` too. */
  refusedByBroker: number
  /** Subscriptions the broker refused (SUBACK failure): their messages never reach the gateway. */
  subscriptionsRefused: number
  /** MQTT messages delivered to devices as frames. */
  delivered: number
  /** MQTT messages not delivered to a device: not JSON, over the device's limit, or queue full. */
  dropped: number
  /** RESPONSE frames the devices sent to acknowledge the gateway's frames ([HT-3.6]). */
  deviceAcks: number
  /** Close reasons, counted. */
  closes: Record<string, number>
  /** Connections refused on accept, before any byte was read, by reason. */
  refused: Record<string, number>
  /** Uplinks answered QUOTA_LIMIT by the per-device message rate. */
  throttled: number
}

export function createStats(): GatewayStats {
  return {
    connections: 0,
    open: 0,
    online: 0,
    logins: 0,
    loginFailures: 0,
    framesIn: 0,
    framesOut: 0,
    published: 0,
    rejected: 0,
    refusedByBroker: 0,
    subscriptionsRefused: 0,
    delivered: 0,
    dropped: 0,
    deviceAcks: 0,
    closes: {},
    refused: {},
    throttled: 0,
  }
}
