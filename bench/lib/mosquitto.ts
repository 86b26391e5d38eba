import { Mosquitto } from '../../test/helpers/mosquitto.js'
import { track } from './procs.js'

/**
 * Mosquitto tuned so that the broker, not its defaults, is what is measured — the same settings
 * for the direct clients and for the gateway:
 * - `max_inflight_messages 1000` (default 20): QoS 1 deliveries to the one counting subscriber
 *   would otherwise be paced by 20-message round trips, capping both sides alike;
 * - `max_queued_messages 0` (no limit, default 1000): a QoS 1 message accepted from a publisher is
 *   never dropped for a slow subscriber, so a lost message is a real loss;
 * - `set_tcp_nodelay true`: without it Nagle's algorithm delays small writes, which shows up as
 *   latency of the broker, not of the gateway.
 */
export const MOSQUITTO_SETTINGS = {
  max_inflight_messages: 1000,
  max_queued_messages: 0,
  set_tcp_nodelay: true,
  persistence: false,
} as const

/** A Mosquitto for the benchmark (the tests' launcher, these settings), killed if the run dies. */
export async function startBenchMosquitto(): Promise<Mosquitto> {
  const m = await Mosquitto.start({ settings: MOSQUITTO_SETTINGS })
  if (m.process) track(m.process)
  return m
}
