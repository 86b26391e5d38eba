import { sleep } from './clock.js'

/** What every sender (a HyperTCP device, an MQTT client) counts. */
export interface Sender {
  inflight: number
  sent: number
  acked: number
  rejected: number
}

/**
 * After an uplink run: waits (up to 10 s) for the last acknowledgements, then sums what the
 * senders counted. The same for both sides, so both are settled alike.
 */
export async function settle(senders: readonly Sender[]) {
  const deadline = Date.now() + 10_000
  const unacked = () => senders.reduce((n, s) => n + s.inflight, 0)
  while (unacked() > 0 && Date.now() < deadline) await sleep(5)
  let sent = 0
  let acked = 0
  let rejected = 0
  for (const s of senders) {
    sent += s.sent
    acked += s.acked
    rejected += s.rejected
  }
  return { sent, acked, rejected, unacked: unacked(), ackedPerDevice: senders.map((s) => s.acked) }
}
