import type { DownlinkRow, LatencyRow, UplinkRow } from '../scenarios/messages.js'
import type { ScaleRow } from '../scenarios/scale.js'
import type { SoakPhase, SoakResult } from '../scenarios/soak.js'
import type { Machine } from './machine.js'
import type { BenchOptions, BrokerKind } from './options.js'
import { round, sum } from './stats.js'

/** The headline figures, flat at the top of latest.json (null when the scenario did not run). */
export interface Headline {
  uplink_ratio_qos1_embedded: number | null
  uplink_ratio_qos1_mosquitto: number | null
  uplink_msgs_per_s_qos1_embedded: number | null
  uplink_msgs_per_s_qos1_mosquitto: number | null
  uplink_ratio_qos0_embedded: number | null
  uplink_ratio_qos0_mosquitto: number | null
  /** Against the raw direct clients (same design as the HyperTCP generator), full mode only. */
  uplink_ratio_raw_qos1_embedded: number | null
  uplink_ratio_raw_qos1_mosquitto: number | null
  added_p99_ms_at_1k: number | null
  added_p99_ms_at_10k: number | null
  added_p99_ms_at_1k_mosquitto: number | null
  added_p99_ms_at_10k_mosquitto: number | null
  downlink_msgs_per_s: number | null
  /** At the first latency rate (1k msgs/s), open loop. */
  downlink_p99_ms: number | null
  downlink_p99_ms_saturated: number | null
  /**
   * Downlinks/s delivered to the devices through the gateway ÷ messages/s received by as many
   * direct MQTT clients subscribed to the same down topics (same publisher, same window).
   */
  downlink_ratio_embedded: number | null
  downlink_ratio_mosquitto: number | null
  /** Downlinks/s at-least-once (the default) ÷ at-most-once, same closed loop. */
  downlink_at_least_once_share_embedded: number | null
  downlink_at_least_once_share_mosquitto: number | null
  max_devices: number | null
  rss_kib_per_device: number | null
  heap_kib_per_device: number | null
  logins_per_s: number | null
  /**
   * Logins/s through the gateway (the scale login ramp) ÷ direct MQTT logins/s (CONNECT, SUBSCRIBE
   * to the own down topic, SUBACK) of as many clients to the same broker, same ramp.
   */
  login_ratio_embedded: number | null
  login_ratio_mosquitto: number | null
  restart_s: number | null
  /** QoS 1 uplinks acknowledged to the sender and never received: must be 0. */
  lost_acked_messages: number
  /** QoS 0 uplinks sent and never received (no guarantee, reported). */
  lost_qos0_messages: number
  /** Downlinks accepted by the broker and never delivered (at most once, reported). */
  downlink_dropped: number
}

/** How the run was set up (what the tables' captions quote). */
export interface Settings {
  runs: number
  warmup_ms: number
  measure_ms: number
  latency_measure_ms: number
  devices: number
  window: number
  generator_processes: number
  rates: number[]
  downlink_window: number
  scale_devices: number
  scale_runs: number
  scale_generator_processes: number
  scale_time_limit_s: number
  [more: string]: unknown
}

export interface Results extends Headline {
  machine: Machine
  command: string
  mode: BenchOptions['mode']
  date: string
  elapsed_s: number
  gateway: { dist: string; commit: string | null; flags: string[]; node_args: string[] }
  settings: Settings
  uplink: UplinkRow[]
  latency: LatencyRow[]
  downlink: DownlinkRow[]
  scale: ScaleRow[]
  soak?: SoakResult
  /** Why the run failed (lost or unsettled messages, devices that did not log in or come back). */
  failures: string[]
  /** What the gateway printed (first lines). */
  gateway_output: string[]
}

const orNull = (v: number | null | undefined) =>
  v === undefined || v === null || !Number.isFinite(v) ? null : v

/** The brokers in the order the tables list them. */
const BROKERS: readonly BrokerKind[] = ['embedded', 'mosquitto', 'external']

export function headline(
  uplink: UplinkRow[],
  latency: LatencyRow[],
  downlink: DownlinkRow[],
  scale: ScaleRow[],
): Headline {
  const rate = (b: BrokerKind, qos: 0 | 1, side: string) =>
    uplink.find((r) => r.broker === b && r.qos === qos && r.side === side)?.msgs_per_s
  const ratio = (b: BrokerKind, qos: 0 | 1, base = 'direct') => {
    const gw = rate(b, qos, 'gateway')
    const direct = rate(b, qos, base)
    return gw === undefined || direct === undefined ? undefined : round(gw / direct, 3)
  }
  const added = (b: BrokerKind, r: number) => {
    const gw = latency.find((l) => l.broker === b && l.rate === r && l.side === 'gateway')
    const direct = latency.find((l) => l.broker === b && l.rate === r && l.side === 'direct')
    return gw && direct ? round(gw.p99_ms - direct.p99_ms, 3) : undefined
  }
  const dl = downlink.find((d) => d.broker === 'embedded') ?? downlink[0]
  const sc = scale.find((s) => s.broker === 'embedded') ?? scale[0]
  return {
    uplink_ratio_qos1_embedded: orNull(ratio('embedded', 1)),
    uplink_ratio_qos1_mosquitto: orNull(ratio('mosquitto', 1)),
    uplink_msgs_per_s_qos1_embedded: orNull(rate('embedded', 1, 'gateway')),
    uplink_msgs_per_s_qos1_mosquitto: orNull(rate('mosquitto', 1, 'gateway')),
    uplink_ratio_qos0_embedded: orNull(ratio('embedded', 0)),
    uplink_ratio_qos0_mosquitto: orNull(ratio('mosquitto', 0)),
    uplink_ratio_raw_qos1_embedded: orNull(ratio('embedded', 1, 'raw')),
    uplink_ratio_raw_qos1_mosquitto: orNull(ratio('mosquitto', 1, 'raw')),
    added_p99_ms_at_1k: orNull(added('embedded', 1000)),
    added_p99_ms_at_10k: orNull(added('embedded', 10_000)),
    added_p99_ms_at_1k_mosquitto: orNull(added('mosquitto', 1000)),
    added_p99_ms_at_10k_mosquitto: orNull(added('mosquitto', 10_000)),
    downlink_msgs_per_s: orNull(dl?.msgs_per_s),
    downlink_p99_ms: orNull(dl?.latency_p99_ms),
    downlink_p99_ms_saturated: orNull(dl?.p99_ms),
    downlink_ratio_embedded: orNull(downlink.find((d) => d.broker === 'embedded')?.ratio),
    downlink_ratio_mosquitto: orNull(downlink.find((d) => d.broker === 'mosquitto')?.ratio),
    downlink_at_least_once_share_embedded: orNull(
      downlink.find((d) => d.broker === 'embedded')?.at_least_once_share,
    ),
    downlink_at_least_once_share_mosquitto: orNull(
      downlink.find((d) => d.broker === 'mosquitto')?.at_least_once_share,
    ),
    max_devices: orNull(sc?.max_devices),
    rss_kib_per_device: orNull(sc?.rss_kib_per_device),
    heap_kib_per_device: orNull(sc?.heap_kib_per_device),
    logins_per_s: orNull(sc?.logins_per_s),
    login_ratio_embedded: orNull(scale.find((s) => s.broker === 'embedded')?.login_ratio),
    login_ratio_mosquitto: orNull(scale.find((s) => s.broker === 'mosquitto')?.login_ratio),
    restart_s: orNull(sc?.restart_s),
    lost_acked_messages:
      sum(uplink.filter((r) => r.qos === 1).map((r) => r.lost) as number[]) + sum(latency.map((r) => r.lost)),
    lost_qos0_messages: sum(uplink.filter((r) => r.qos === 0).map((r) => r.lost)),
    downlink_dropped: sum(downlink.map((d) => d.dropped)),
  }
}

// ---- the table ----

function fmt(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** `gateway / broker / generators` CPU % during the login ramp (the embedded broker is in the gateway). */
function rampCpu(pct: Record<string, number> | undefined): string {
  if (pct === undefined) return '–'
  return `${fmt(pct.gateway)} / ${pct.mosquitto === undefined ? 'in gw' : fmt(pct.mosquitto)} / ${fmt(pct.generators)}`
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  const sep = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`
  return [line(header), sep, ...rows.map(line)].join('\n')
}

const check = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'NOT met')

/** The human-readable report: Markdown tables (pasteable into the README's Performance section). */
export function renderTable(r: Results): string {
  const m = r.machine
  const set = r.settings
  const out: string[] = []
  out.push(
    `### \`${r.command}\` — ${r.mode} mode, ${r.mode === 'soak' ? 'one run' : `median of ${set.runs} run(s) per figure`}, warm-up excluded`,
  )
  out.push('')
  out.push(
    `Machine: ${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, Node ${m.node}, open files ${m.open_files_limit}, ` +
      `Linux ${m.kernel}, Mosquitto ${m.mosquitto ?? '–'}. Gateway ${r.gateway.commit ?? r.gateway.dist} (log level warn); ` +
      `all processes (gateway, broker, generators, subscriber) share the machine.`,
  )
  if (typeof set.broker_url === 'string') {
    out.push('')
    out.push(
      `Broker \`external\`: ${set.broker_url} (the gateway runs with \`--mqtt-url\`; direct clients, publisher ` +
        'and subscriber connect to it; it runs wherever it runs — its CPU is not sampled).',
    )
  }
  if (r.uplink.length > 0) {
    out.push('')
    out.push(
      `**Uplink throughput** — ${set.devices} HyperTCP devices → gateway → broker → 1 subscriber, vs ${set.devices} ` +
        `MQTT.js clients → broker → the same subscriber; ${set.window} messages in flight per device ` +
        `(QoS 1: until acknowledged; QoS 0: until received), ${set.generator_processes} generator process(es) per side.`,
    )
    out.push('')
    const rows: string[][] = []
    for (const b of BROKERS) {
      for (const qos of [1, 0] as const) {
        const get = (side: string) => r.uplink.find((u) => u.broker === b && u.qos === qos && u.side === side)
        const gw = get('gateway')
        const direct = get('direct')
        const raw = get('raw')
        if (!gw || !direct) continue
        rows.push([
          b,
          String(qos),
          fmt(gw.msgs_per_s),
          fmt(direct.msgs_per_s),
          fmt(gw.msgs_per_s / direct.msgs_per_s, 2),
          raw ? `${fmt(raw.msgs_per_s)} (${fmt(gw.msgs_per_s / raw.msgs_per_s, 2)})` : '–',
          fmt(gw.gateway_cpu_us_per_msg, 1),
          `${fmt(gw.all_cpu_us_per_msg, 1)} / ${fmt(direct.all_cpu_us_per_msg, 1)}`,
          `${fmt(gw.gateway_syscalls_per_msg.read, 2)} / ${fmt(gw.gateway_syscalls_per_msg.write, 2)}`,
          String(gw.lost + direct.lost + (raw?.lost ?? 0)),
        ])
      }
    }
    out.push(
      table(
        [
          'broker',
          'QoS',
          'gateway msgs/s',
          'direct msgs/s',
          'gateway/direct',
          'raw direct msgs/s (ratio)',
          'gw CPU µs/msg',
          'all CPU µs/msg gw / direct',
          'gw syscalls/msg r / w',
          'lost',
        ],
        rows,
      ),
    )
  }
  if (r.latency.length > 0) {
    out.push('')
    out.push(
      `**Uplink latency** — device → subscriber at a fixed offered load (open loop), QoS 1, ${set.devices} devices; ` +
        `HdrHistogram, ms.`,
    )
    out.push('')
    const rows: string[][] = []
    for (const b of BROKERS) {
      for (const rate of set.rates) {
        const gw = r.latency.find((l) => l.broker === b && l.rate === rate && l.side === 'gateway')
        const direct = r.latency.find((l) => l.broker === b && l.rate === rate && l.side === 'direct')
        if (!gw || !direct) continue
        rows.push([
          b,
          fmt(rate),
          `${fmt(gw.p50_ms, 2)} / ${fmt(gw.p99_ms, 2)} / ${fmt(gw.max_ms, 1)}`,
          `${fmt(direct.p50_ms, 2)} / ${fmt(direct.p99_ms, 2)} / ${fmt(direct.max_ms, 1)}`,
          fmt(gw.p99_ms - direct.p99_ms, 2),
        ])
      }
    }
    out.push(
      table(['broker', 'msgs/s', 'gateway p50 / p99 / max', 'direct p50 / p99 / max', 'added p99'], rows),
    )
  }
  if (r.downlink.length > 0) {
    out.push('')
    out.push(
      `**Downlink** — MQTT publisher → broker → gateway → ${set.devices} devices, vs the same publisher → broker → ` +
        `${set.devices} direct MQTT clients (each subscribed at QoS 1 to its own down topic); ${set.downlink_window} in ` +
        'flight per device (closed loop on delivery) for throughput; gateway latency also at a fixed offered load (open loop).',
    )
    out.push('')
    out.push(
      table(
        [
          'broker',
          'gateway msgs/s',
          'direct msgs/s',
          'gateway/direct',
          'gw p50 / p99 / max ms at that load',
          'direct p50 / p99 / max ms at that load',
          `gw p50 / p99 / max ms at ${fmt(set.rates[0])} msgs/s`,
          'dropped gw / direct',
          'gw msgs/s at-most-once',
          'at-least-once / at-most-once',
        ],
        r.downlink.map((d) => [
          d.broker,
          fmt(d.msgs_per_s),
          fmt(d.direct_msgs_per_s),
          fmt(d.ratio, 2),
          `${fmt(d.p50_ms, 2)} / ${fmt(d.p99_ms, 2)} / ${fmt(d.max_ms, 1)}`,
          `${fmt(d.direct_p50_ms, 2)} / ${fmt(d.direct_p99_ms, 2)} / ${fmt(d.direct_max_ms, 1)}`,
          `${fmt(d.latency_p50_ms, 2)} / ${fmt(d.latency_p99_ms, 2)} / ${fmt(d.latency_max_ms, 1)}`,
          `${d.dropped} / ${d.direct_dropped ?? '–'}`,
          fmt(d.at_most_once_msgs_per_s),
          fmt(d.at_least_once_share, 2),
        ]),
      ),
    )
  }
  if (r.scale.length > 0) {
    out.push('')
    out.push(
      '**Scale** — idle logged-in devices in one gateway process (one descriptor each: bounded by its open-files ' +
        `limit; more through gateway workers, RSS then summed over the primary and its workers), ${set.scale_generator_processes} generator process(es); restart = SIGKILL, start again, devices reconnect with jittered backoff; ` +
        'direct = as many bare MQTT clients from the same generators and ramp to the same broker, each logged in at the SUBACK of its own down topic.',
    )
    out.push('')
    out.push(
      table(
        [
          'broker',
          'devices',
          'gateway processes',
          'logins/s',
          'direct logins/s',
          'gateway/direct',
          'gw CPU µs/login',
          'ramp CPU % gw / broker / gen',
          'CPU µs/login, all processes: gw / direct',
          'broker µs/login: gw / direct',
          'RSS KiB/device',
          'heap KiB/device',
          '90 % back',
          'all back after kill',
          'msgs/s, all connected',
        ],
        r.scale.map((s) => [
          s.broker,
          `${fmt(s.max_devices)} / ${fmt(s.target)}`,
          s.gateway_workers > 1 ? `${s.gateway_workers} workers + primary` : '1',
          fmt(s.logins_per_s),
          fmt(s.direct_logins_per_s),
          fmt(s.login_ratio, 2),
          fmt(s.gateway_cpu_us_per_login),
          rampCpu(s.login_cpu_pct),
          `${fmt(s.login_cpu_us?.all)} / ${fmt(s.direct_login_cpu_us?.all)}`,
          s.login_cpu_us?.mosquitto === undefined
            ? 'in gw'
            : `${fmt(s.login_cpu_us.mosquitto)} / ${fmt(s.direct_login_cpu_us?.mosquitto)}`,
          fmt(s.rss_kib_per_device, 2),
          fmt(s.heap_kib_per_device, 2),
          `${fmt(s.restart_s_p90, 2)} s`,
          `${fmt(s.restart_s, 2)} s`,
          fmt(s.msgs_per_s_connected),
        ]),
      ),
    )
  }
  if (r.soak) {
    out.push('')
    out.push(
      `**Soak** (${r.soak.broker} broker) — ${r.soak.idle.devices} idle devices for ${r.soak.idle.minutes} min; ` +
        `${fmt(r.soak.churn.cycles)} connect/disconnect cycles at ${fmt(r.soak.churn.cycles_per_s)}/s. ` +
        'RSS as sampled every 10 s (no forced GC), over the measured window after a warm-up (2 min of idle / ' +
        'the first 10 % of the cycles); trend = growth over the window by a least-squares line through all its ' +
        "samples (the GC sawtooth averaged out), band = (max − min) / min. RSS is split into V8's committed " +
        'heap and the rest (sockets, buffers, code, the runtime), sampled together.',
    )
    out.push('')
    out.push(
      table(
        [
          'phase',
          'RSS first MiB',
          'RSS last MiB',
          'RSS min / max MiB',
          'last vs first',
          'trend',
          'band',
          'V8 heap min / max MiB',
          'outside V8 heap min / max MiB (band)',
        ],
        [
          ...(r.soak.idle.minutes > 0 ? [['idle', ...soakCells(r.soak.idle)]] : []),
          ['churn', ...soakCells(r.soak.churn)],
        ],
      ),
    )
    const { heap_before_kib: before, heap_after_kib: after, gateway_cpu_us_per_cycle: cpu } = r.soak.churn
    if (before !== undefined && after !== undefined) {
      out.push('')
      out.push(
        `The gateway's heap after a forced GC: ${fmt(before / 1024, 1)} MiB before the cycles, ` +
          `${fmt(after / 1024, 1)} MiB after (${fmt(((after - before) / before) * 100, 1)} %)` +
          (cpu !== undefined ? `; its CPU per cycle: ${fmt(cpu, 0)} µs.` : '.'),
      )
    }
  }
  out.push('')
  out.push(
    r.mode === 'soak'
      ? '**Targets** (issue 4, 2-core machine): those the soak measures.'
      : '**Targets** (issue 4, 2-core machine; RSS flatness is measured by `--soak`):',
  )
  out.push('')
  out.push(table(['target', 'measured', ''], targetRows(r)))
  if (r.failures.length > 0) {
    out.push('')
    out.push(`FAILED RUN: ${r.failures.join('; ')}`)
  }
  return out.join('\n')
}

function soakCells(p: SoakPhase): string[] {
  const mib = (k: number) => fmt(k / 1024, 1)
  return [
    mib(p.rss_first_kib),
    mib(p.rss_last_kib),
    `${mib(p.rss_min_kib)} / ${mib(p.rss_max_kib)}`,
    `${fmt(p.change_pct, 1)} %`,
    `${fmt(p.trend_pct, 1)} %`,
    `${fmt(p.band_pct, 1)} %`,
    // Results written before the heap was sampled alongside RSS have neither.
    p.heap_total_min_kib === undefined ? '–' : `${mib(p.heap_total_min_kib)} / ${mib(p.heap_total_max_kib)}`,
    p.outside_heap_min_kib === undefined
      ? '–'
      : `${mib(p.outside_heap_min_kib)} / ${mib(p.outside_heap_max_kib)} (${fmt(p.outside_heap_band_pct, 1)} %)`,
  ]
}

type Row = [target: string, measured: string, verdict: string]

/** The issue's targets against this run's figures; targets the mode did not measure are left out. */
function targetRows(r: Results): Row[] {
  const rows: Row[] = []
  const add = (target: string, value: number | null, ok: (v: number) => boolean, digits?: number) => {
    if (value !== null) rows.push([target, fmt(value, digits), check(ok(value))])
  }
  const h: Headline = r
  add('uplink QoS 1 gateway/direct ≥ 1.0, embedded', h.uplink_ratio_qos1_embedded, (v) => v >= 1, 2)
  add('uplink QoS 1 gateway/direct ≥ 1.0, Mosquitto', h.uplink_ratio_qos1_mosquitto, (v) => v >= 1, 2)
  add('added p99 ≤ 1 ms at 1k msgs/s, embedded', h.added_p99_ms_at_1k, (v) => v <= 1, 2)
  add('added p99 ≤ 1 ms at 1k msgs/s, Mosquitto', h.added_p99_ms_at_1k_mosquitto, (v) => v <= 1, 2)
  add('added p99 ≤ 3 ms at 10k msgs/s, embedded', h.added_p99_ms_at_10k, (v) => v <= 3, 2)
  add('added p99 ≤ 3 ms at 10k msgs/s, Mosquitto', h.added_p99_ms_at_10k_mosquitto, (v) => v <= 3, 2)
  const share = (v: number) => v >= 0.7
  add(
    'downlinks at-least-once ≥ 70 % of at-most-once, embedded',
    h.downlink_at_least_once_share_embedded,
    share,
    2,
  )
  add(
    'downlinks at-least-once ≥ 70 % of at-most-once, Mosquitto',
    h.downlink_at_least_once_share_mosquitto,
    share,
    2,
  )
  for (const sc of r.scale) {
    const on = sc.broker === 'embedded' ? 'embedded' : sc.broker === 'mosquitto' ? 'Mosquitto' : sc.broker
    add(`≥ 19,000 devices in one process, ${on}`, sc.max_devices, (v) => v >= 19_000)
    add(`≤ 8 KiB RSS per idle device, ${on}`, sc.rss_kib_per_device, (v) => v <= 8, 2)
    add(`≥ 5,000 logins/s, ${on}`, sc.logins_per_s, (v) => v >= 5000)
    add(`logins gateway/direct ≥ 1.5, ${on}`, orNull(sc.login_ratio), (v) => v >= 1.5, 2)
    add(`all devices back ≤ 10 s after a restart, ${on}`, sc.restart_s, (v) => v <= 10, 2)
  }
  if (r.soak) {
    const flat = (v: number) => Math.abs(v) <= 2
    const pct = (target: string, value: number, prefix = '') =>
      rows.push([target, `${prefix}${fmt(value, 1)} %`, check(flat(value))])
    // `--soak-minutes 0` measures no idle window: nothing to judge.
    if (r.soak.idle.minutes > 0) {
      pct('idle RSS flat (±2 %) over 10 min: trend', r.soak.idle.trend_pct)
      pct('idle RSS flat (±2 %) over 10 min: band', r.soak.idle.band_pct / 2, '±')
    }
    pct('RSS flat (±2 %) across connect/disconnect cycles: trend', r.soak.churn.trend_pct)
    pct('RSS flat (±2 %) across connect/disconnect cycles: band', r.soak.churn.band_pct / 2, '±')
    add('≥ 1M connect/disconnect cycles', r.soak.churn.cycles, (v) => v >= 1_000_000)
  }
  add('no acknowledged message lost', h.lost_acked_messages, (v) => v === 0)
  return rows
}
