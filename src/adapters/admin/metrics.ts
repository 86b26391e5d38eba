import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client'
import { Cmd } from '../../protocol/constants.js'
import type { BucketCounts, GatewayStats } from '../../stats.js'

/** What the metrics are read from, at each scrape. */
export interface MetricsSource {
  stats(): GatewayStats
  /** Whether each broker connection is up (one, in-process, for the embedded broker). */
  brokerConnected(): readonly boolean[]
}

const COMMAND_NAMES = new Map<number, string>(
  Object.entries(Cmd).map(([name, type]) => [type as number, name.toLowerCase()]),
)

/**
 * The gateway's Prometheus metrics (prom-client): the process and Node.js defaults
 * (`process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, …) and the gateway's own. The
 * hot path only bumps plain numbers in {@link GatewayStats}; the metrics read them at each scrape
 * (each `collect` resets its metric and adds the counts), so keeping them costs nothing per message.
 */
export class GatewayMetrics {
  readonly registry = new Registry()

  constructor(source: MetricsSource) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    new Gauge({
      name: 'hypertcp_devices_connected',
      help: 'Devices logged in right now',
      registers,
      collect() {
        this.set(source.stats().online)
      },
    })
    new Gauge({
      name: 'hypertcp_devices_connected_by_dialect',
      help: 'Devices logged in right now, by device protocol (hypertcp, blynk)',
      labelNames: ['dialect'],
      registers,
      collect() {
        this.reset()
        for (const [dialect, n] of Object.entries(source.stats().onlineByDialect)) this.set({ dialect }, n)
      },
    })
    const counter = (
      name: string,
      help: string,
      label: string,
      read: (s: GatewayStats) => Record<string, number>,
    ) =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset()
          for (const [value, n] of Object.entries(read(source.stats())))
            if (n > 0) this.inc({ [label]: value }, n)
        },
      })
    counter(
      'hypertcp_logins_total',
      'Logins by result: ok, or why one was refused',
      'result',
      (s) => s.loginResults,
    )
    counter('hypertcp_closes_total', 'Device connections closed, by reason', 'reason', (s) => s.closes)
    counter('hypertcp_messages_up_total', 'Device messages by outcome', 'result', (s) => ({
      acked: s.published,
      refused: s.refusedByBroker,
      error: s.rejected - s.refusedByBroker,
      rate_limited: s.throttled,
      truncated: s.truncated,
    }))
    counter('hypertcp_messages_down_total', 'MQTT messages for devices by outcome', 'result', (s) => ({
      delivered: s.delivered,
      ...Object.fromEntries(Object.entries(s.droppedBy).map(([why, n]) => [`dropped_${why}`, n])),
    }))
    counter('hypertcp_frames_in_total', 'Frames received from devices, by command', 'type', (s) => {
      const out: Record<string, number> = {}
      s.framesByType.forEach((n, type) => {
        if (n > 0) out[COMMAND_NAMES.get(type) ?? String(type)] = n
      })
      return out
    })
    counter(
      'hypertcp_connections_refused_total',
      'Connections refused on accept, by reason',
      'reason',
      (s) => s.refused,
    )
    counter(
      'hypertcp_control_refused_total',
      'Control-topic commands not obeyed, by reason',
      'reason',
      (s) => s.controlRefused,
    )
    new Counter({
      name: 'hypertcp_logins_delayed_total',
      help: 'Logins delayed because their device id logged in too often (takeover flapping)',
      registers,
      collect() {
        this.reset()
        this.inc(source.stats().loginsDelayed)
      },
    })
    counter(
      'hypertcp_takeovers_total',
      'Devices taken over by another instance, by whether it announced them online in time',
      'result',
      (s) => s.takeovers,
    )
    counter(
      'hypertcp_downlinks_kept_total',
      'Downlinks put in the store (kept), and how they left it: acknowledged by the device, handed over to another instance',
      'event',
      (s) => ({ kept: s.kept, acknowledged: s.keptAcknowledged, handed_over: s.handedOver }),
    )
    for (const [name, help, read] of [
      ['hypertcp_downlinks_stored', 'Downlinks in the store now', (s: GatewayStats) => s.keptNow],
      [
        'hypertcp_downlinks_stored_bytes',
        'Bytes of the downlinks in the store now',
        (s: GatewayStats) => s.keptBytes,
      ],
    ] as const) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(source.stats()))
        },
      })
    }
    new Gauge({
      name: 'hypertcp_broker_connected',
      help: 'Whether each broker connection is up (1) or not (0)',
      labelNames: ['connection'],
      registers,
      collect() {
        this.reset()
        source.brokerConnected().forEach((up, i) => {
          this.set({ connection: String(i) }, up ? 1 : 0)
        })
      },
    })
    this.registry.registerMetric(
      histogram(
        'hypertcp_publish_ack_seconds',
        "Time from a device's message to the broker's acknowledgement of its publish",
        () => source.stats().publishAck,
      ),
    )
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

/**
 * A histogram whose counts live in {@link BucketCounts} (bumped by the hot path without prom-client's
 * per-observation label lookup and closure, about 150 ns each here), exposed to the registry as a
 * metric of its own: at each scrape the registry asks it for its values (`get`), in the shape its
 * own histograms give (cumulative `_bucket` values by `le`, then `_sum` and `_count`). prom-client's
 * typings name metric types by an enum its runtime does not use, hence the one cast.
 */
function histogram(name: string, help: string, read: () => BucketCounts): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const h = read()
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
      let acc = 0
      h.bounds.forEach((le, i) => {
        acc += h.counts[i]!
        values.push({ labels: { le }, value: acc, metricName: `${name}_bucket` })
      })
      values.push({ labels: { le: '+Inf' }, value: h.count, metricName: `${name}_bucket` })
      values.push({ labels: {}, value: h.sum, metricName: `${name}_sum` })
      values.push({ labels: {}, value: h.count, metricName: `${name}_count` })
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values })
    },
    reset() {},
  }
  return metric as unknown as Metric
}
