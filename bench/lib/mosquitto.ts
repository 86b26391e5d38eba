import { setPriority } from 'node:os'
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

/**
 * A Mosquitto for the benchmark (the tests' launcher, these settings), killed if the run dies.
 * `priority` (a nice value, e.g. -10) puts it ahead of the gateway's and generators' processes
 * where they outnumber the cores; logged, not fatal, where the system refuses it.
 */
export async function startBenchMosquitto(
  priority?: number,
  log: (line: string) => void = () => {},
): Promise<Mosquitto> {
  const m = await Mosquitto.start({ settings: MOSQUITTO_SETTINGS })
  if (m.process) track(m.process)
  const pid = m.process?.pid
  if (priority !== undefined && pid !== undefined) {
    try {
      setPriority(pid, priority)
      log(`  mosquitto: nice ${priority} (pid ${pid})`)
    } catch (err) {
      log(`  mosquitto: nice ${priority} refused (${(err as Error).message}): it shares the cores evenly`)
    }
  }
  return m
}
