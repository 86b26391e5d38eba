/**
 * Uplink throughput, uplink latency and downlink, for one broker: the gateway path and the direct
 * MQTT path measured side by side, alternating run by run so drift on a shared machine hits both.
 * The broker is the gateway's embedded one, a Mosquitto started for the run, or an external one
 * (`--broker-url`): the gateway, the direct clients and the subscriber all use the same.
 */
import { join } from 'node:path'
import { freePort } from '../../test/helpers/net.js'
import type { UplinkArgs, UplinkResult } from '../gen/devices.js'
import { nowUs, sleep } from '../lib/clock.js'
import { GatewayProc, type GatewaySpec } from '../lib/gateway.js'
import { decodeHistogram, type LatencySummary, newHistogram, summarize } from '../lib/hist.js'
import type { Worker } from '../lib/ipc.js'
import { startBenchMosquitto } from '../lib/mosquitto.js'
import type { BenchOptions, BrokerKind } from '../lib/options.js'
import { cpuPercent, type ProcSample, procDelta, sampleRoles, waitQuiet } from '../lib/procs.js'
import type { Rig } from '../lib/rig.js'
import { median, medianByKey, round, split, sum } from '../lib/stats.js'

export type Side = 'gateway' | 'direct' | 'raw'

/** One measured run of uplink messages. */
export interface UplinkRun {
  msgs_per_s: number
  sent: number
  acked: number
  rejected: number
  /** Still unacknowledged after the drain: the run did not settle. */
  unacked: number
  /** Acknowledged to the sender but never received by the subscriber. */
  lost: number
  duplicates: number
  out_of_order: number
  malformed: number
  latency: LatencySummary
  /** CPU use during the measurement window, % of one core, per process role. */
  cpu_pct: Record<string, number>
  /** Gateway process CPU and syscalls per message received in the window. */
  gateway_cpu_us_per_msg: number
  gateway_syscalls_per_msg: { read: number; write: number }
  /**
   * CPU of every process of the side (generators, gateway, broker, subscriber) per message: on a
   * saturated machine, throughput is the cores divided by this.
   */
  all_cpu_us_per_msg: number
}

export interface UplinkRow {
  broker: BrokerKind
  qos: 0 | 1
  side: Side
  clients: number
  msgs_per_s: number
  lost: number
  rejected: number
  gateway_cpu_us_per_msg: number
  gateway_syscalls_per_msg: { read: number; write: number }
  all_cpu_us_per_msg: number
  cpu_pct: Record<string, number>
  runs: UplinkRun[]
}

export interface LatencyRow {
  broker: BrokerKind
  rate: number
  side: Side
  achieved_msgs_per_s: number
  p50_ms: number
  p99_ms: number
  max_ms: number
  samples: number
  lost: number
  runs: UplinkRun[]
}

export interface DownlinkRun {
  msgs_per_s: number
  published: number
  received: number
  /** Published (and accepted by the broker) but not delivered: at-most-once drops. */
  dropped: number
  duplicates: number
  latency: LatencySummary
  gateway_cpu_us_per_msg: number
  /** CPU use during the window, % of one core, per process role (gateway, generators, mosquitto). */
  cpu_pct: Record<string, number>
  /** CPU of every process of the side per message delivered (what a saturated machine divides its cores by). */
  all_cpu_us_per_msg: number
}

export interface DownlinkRow {
  broker: BrokerKind
  /** Devices, and as many direct MQTT clients on the direct side. */
  devices: number
  /** Closed loop (saturating): `window` in flight per device. */
  window: number
  msgs_per_s: number
  p50_ms: number
  p99_ms: number
  max_ms: number
  /** Open loop at `latency_rate` msgs/s: latency not dominated by the closed loop's own queue. */
  latency_rate: number
  latency_p50_ms: number
  latency_p99_ms: number
  latency_max_ms: number
  /** Through the gateway: published, accepted by the broker, never delivered (at most once, [HT-5.2]). */
  dropped: number
  /**
   * The direct side (null when `--sides` leaves it out): as many MQTT clients, each subscribed at
   * QoS 1 to its own `hypertcp/<id>/dn`, the same publisher, the same window, closed loop.
   */
  direct_msgs_per_s: number | null
  direct_p50_ms: number | null
  direct_p99_ms: number | null
  direct_max_ms: number | null
  direct_dropped: number
  /** msgs_per_s / direct_msgs_per_s. */
  ratio: number | null
  /**
   * The same closed loop through a gateway with `downlinkDelivery: at-most-once` (the rest of the
   * row is the default, at-least-once: every downlink written to the store and removed on the
   * device's acknowledgement); null when not measured.
   */
  at_most_once_msgs_per_s: number | null
  /** msgs_per_s / at_most_once_msgs_per_s: what at-least-once keeps of the throughput. */
  at_least_once_share: number | null
  at_most_once_runs: DownlinkRun[]
  runs: DownlinkRun[]
  latency_runs: DownlinkRun[]
  direct_runs: DownlinkRun[]
}

export interface MessageResults {
  uplink: UplinkRow[]
  latency: LatencyRow[]
  downlink: DownlinkRow[]
  gateway_flags: string[]
  warnings: string[]
}

interface Group {
  opts: BenchOptions
  rig: Rig
  gw: GatewayProc
  broker: BrokerKind
  brokerPid: number
  log: (line: string) => void
  /** The subscriber's credit port (QoS 0 runs, see gen/credit.ts). */
  creditPort: number
}

/**
 * Gateway settings of the message runs. The defaults bound what waits for the broker per device
 * (maxInflight 16) and in total (maxPendingPublishes 10000); the closed loop keeps `window` (16)
 * per device unacknowledged, so the defaults hold and nothing is raised.
 */
function gatewayFlags(opts: BenchOptions): Record<string, string> {
  return { ...opts.gatewayFlags }
}

export async function runMessages(
  opts: BenchOptions,
  rig: Rig,
  broker: BrokerKind,
  log: (line: string) => void,
): Promise<MessageResults> {
  const out: MessageResults = { uplink: [], latency: [], downlink: [], gateway_flags: [], warnings: [] }
  const mosquitto = broker === 'mosquitto' ? await startBenchMosquitto() : undefined
  const mqttUrl = broker === 'external' ? opts.brokerUrl : mosquitto?.url
  try {
    for (const qos of opts.qos) {
      const wantUplink = opts.scenarios.includes('uplink')
      const wantOthers =
        qos === 1 && (opts.scenarios.includes('latency') || opts.scenarios.includes('downlink'))
      if (!wantUplink && !wantOthers) continue
      const spec = {
        dist: opts.gateway,
        port: await freePort(),
        brokerPort: await freePort(),
        devices: opts.devices,
        qosUp: qos,
        flags: gatewayFlags(opts),
        nodeArgs: opts.gatewayNodeArgs,
        ...(mqttUrl !== undefined ? { mqttUrl } : {}),
      }
      out.gateway_flags = GatewayProc.flags(spec)
      log(`${broker} QoS ${qos}: starting the gateway`)
      const gw = await GatewayProc.start(spec)
      try {
        const g: Group = { opts, rig, gw, broker, brokerPid: mosquitto?.pid ?? 0, log, creditPort: 0 }
        g.creditPort = await prepare(g, qos)
        if (wantUplink) out.uplink.push(...(await throughput(g, qos)))
        if (qos === 1 && opts.scenarios.includes('latency')) out.latency.push(...(await latency(g)))
        if (qos === 1 && opts.scenarios.includes('downlink')) out.downlink.push(await downlink(g))
        await teardown(g)
      } finally {
        await gw.stop('SIGTERM')
        out.warnings.push(...gw.output.slice(0, 20).map((l) => `${broker} QoS ${qos}: ${l}`))
      }
      const row = out.downlink.find((d) => d.broker === broker)
      if (qos === 1 && row !== undefined) await atMostOnce(row, spec, { opts, rig, broker, log, mosquitto })
    }
  } finally {
    await mosquitto?.dispose()
  }
  return out
}

/**
 * Has the message runs' device generators drive HyperTCP devices logged in to the gateway, or
 * (`mqtt`) as many direct MQTT clients of the broker, each subscribed to its own down topic: the
 * direct side of the downlink comparison. One set at a time: the gateway subscribes to a device's
 * down topic while the device is logged in, and would otherwise take the direct side's publishes too.
 */
async function useDevices(g: Group, protocol: 'hypertcp' | 'mqtt'): Promise<void> {
  const { opts, rig, gw } = g
  const ranges = split(opts.devices, opts.procs)
  const at = protocol === 'mqtt' ? gw.broker : { host: '127.0.0.1', port: gw.spec.port }
  await Promise.all(
    rig.devices.map(async (w, i) => {
      await w.call('closeAll', null)
      await w.call('init', { protocol, ...at, ...ranges[i]! })
      const r = await w.call('login', { concurrency: 100, timeoutMs: 20_000 })
      if (r.online !== ranges[i]!.count) {
        const what = protocol === 'mqtt' ? 'direct MQTT clients subscribed' : 'devices logged in'
        throw new Error(`${w.name}: only ${r.online} of ${ranges[i]!.count} ${what}`)
      }
    }),
  )
}

/** Logs the devices in, connects the direct clients and the subscriber; returns the credit port. */
async function prepare(g: Group, qos: 0 | 1): Promise<number> {
  const { opts, rig, gw } = g
  const ranges = split(opts.devices, opts.procs)
  await useDevices(g, 'hypertcp')
  const clients = [
    ...rig.mqttjs.map((w) => [w, 'mqttjs'] as const),
    ...rig.raw.map((w) => [w, 'raw'] as const),
  ]
  await Promise.all(
    clients.map(([w, kind], i) =>
      w.call('init', { broker: gw.broker, kind, qos, ...ranges[i % opts.procs]! }),
    ),
  )
  const sub = await rig.subscriber.call('connect', {
    broker: gw.broker,
    qos,
    devices: opts.devices,
    topic: 'hypertcp/+/up',
  })
  return sub.creditPort
}

async function teardown(g: Group): Promise<void> {
  const { rig } = g
  await Promise.all([
    ...rig.devices.map((w) => w.call('closeAll', null)),
    ...[...rig.mqttjs, ...rig.raw].map((w) => w.call('closeAll', null)),
  ])
  await rig.subscriber.call('close', null)
}

function senders(
  g: Group,
  side: Side,
): Worker<{ uplinkStart: [UplinkArgs, null]; uplinkStop: [null, UplinkResult] }>[] {
  if (side === 'gateway') return g.rig.devices
  return side === 'direct' ? g.rig.mqttjs : g.rig.raw
}

/** Before a run: the gateway (and the embedded broker in it), Mosquitto and the subscriber idle. */
async function settle(g: Group): Promise<void> {
  const pids = [g.gw.pid, g.rig.subscriber.pid]
  if (g.brokerPid) pids.push(g.brokerPid)
  const waited = await waitQuiet(pids)
  if (waited >= 1000)
    g.log(`  (waited ${(waited / 1000).toFixed(1)} s for the previous run's load to settle)`)
}

async function sleepUntil(us: number): Promise<void> {
  const ms = (us - nowUs()) / 1000
  if (ms > 0) await sleep(ms)
}

/** CPU and syscall counters of every process involved, by role. */
function sampleGroup(g: Group, side: Side): Record<string, ProcSample> {
  const roles: Record<string, number[]> = {
    gateway: [g.gw.pid],
    generators: senders(g, side).map((w) => w.pid),
    subscriber: [g.rig.subscriber.pid],
  }
  if (g.brokerPid) roles.mosquitto = [g.brokerPid]
  return sampleRoles(roles)
}

/**
 * One run: the senders start (closed loop or fixed rate), a warm-up passes unmeasured, then the
 * window: the subscriber counts arrivals in it and the latency of messages sent in it, and the
 * CPU of every process is sampled at both ends. Then the senders stop, wait for their last
 * acknowledgements, and the subscriber drains: every acknowledged message must arrive.
 */
async function uplinkRun(
  g: Group,
  side: Side,
  qos: 0 | 1,
  load: UplinkArgs,
  measureMs: number,
  profile?: string,
): Promise<UplinkRun> {
  const workers = senders(g, side)
  await settle(g)
  const start = nowUs() + 20_000
  const w0 = start + g.opts.warmupMs * 1000
  const w1 = w0 + measureMs * 1000
  await g.rig.subscriber.call('reset', { windowStartUs: w0, windowEndUs: w1 })
  await sleepUntil(start)
  const perWorker = { ...load, rate: load.rate / workers.length }
  await Promise.all(workers.map((w) => w.call('uplinkStart', perWorker)))
  await sleepUntil(w0)
  if (profile) await g.gw.profileStart(profile.endsWith('.cpuprofile') ? 'cpu' : 'heap')
  const before = sampleGroup(g, side)
  await sleepUntil(w1)
  const after = sampleGroup(g, side)
  if (profile) {
    await g.gw.profileStop(join(g.opts.profileDir!, profile))
    g.log(`  profile: ${join(g.opts.profileDir!, profile)} (the profiler slows this run: not a result)`)
  }
  const results = await Promise.all(workers.map((w) => w.call('uplinkStop', null)))
  const acked = sum(results.map((r) => r.acked))
  const sub = await g.rig.subscriber.call('drain', { expected: acked, idleMs: 3000 })
  const ackedPerDevice = results.flatMap((r) => r.ackedPerDevice)
  let lost = 0
  ackedPerDevice.forEach((a, i) => {
    lost += Math.max(0, a - (sub.uniquePerDevice[i] ?? 0))
  })
  const seconds = measureMs / 1000
  const cpu_pct = cpuPercent(before, after, measureMs * 1000)
  const n = Math.max(1, sub.inWindow)
  const gwDelta = procDelta(before.gateway!, after.gateway!)
  const run: UplinkRun = {
    msgs_per_s: round(sub.inWindow / seconds, 4),
    sent: sum(results.map((r) => r.sent)),
    acked,
    rejected: sum(results.map((r) => r.rejected)),
    unacked: sum(results.map((r) => r.unacked)),
    lost,
    duplicates: sub.duplicates,
    out_of_order: sub.outOfOrder,
    malformed: sub.malformed,
    latency: summarize(decodeHistogram(sub.histogram)),
    cpu_pct,
    gateway_cpu_us_per_msg: round(gwDelta.cpuUs / n, 3),
    gateway_syscalls_per_msg: { read: round(gwDelta.syscr / n, 3), write: round(gwDelta.syscw / n, 3) },
    all_cpu_us_per_msg: round(((sum(Object.values(cpu_pct)) / 100) * (measureMs * 1000)) / n, 3),
  }
  if (run.lost > 0 && qos === 1) {
    g.log(`  FAILED: ${side} lost ${run.lost} acknowledged messages`)
  }
  return run
}

function describe(r: UplinkRun): string {
  const cpu = Object.entries(r.cpu_pct)
    .map(([k, v]) => `${k} ${Math.round(v)}%`)
    .join(', ')
  return `${Math.round(r.msgs_per_s)} msgs/s, p99 ${r.latency.p99_ms} ms, lost ${r.lost}, rejected ${r.rejected} (cpu: ${cpu})`
}

function sides(g: Group, qos: 0 | 1): Side[] {
  // The raw baseline runs at QoS 1 only, to keep the full run within its time budget.
  return g.opts.sides.filter((s) => s !== 'raw' || (g.rig.raw.length > 0 && qos === 1))
}

async function throughput(g: Group, qos: 0 | 1): Promise<UplinkRow[]> {
  const runs = new Map<Side, UplinkRun[]>()
  const order = sides(g, qos)
  for (let r = 0; r < g.opts.runs; r++) {
    for (const side of order) {
      // QoS 1: the senders' acknowledgements pace the loop (for the gateway: its ack after the
      // broker's PUBACK). QoS 0 has none: the subscriber's credits do (gen/credit.ts).
      const load: UplinkArgs =
        qos === 1
          ? { mode: 'closed', window: g.opts.window, rate: 0 }
          : { mode: 'e2e', window: g.opts.window, rate: 0, creditPort: g.creditPort }
      // Profiling: CPU during the first gateway window, allocations during the second.
      const profile =
        g.opts.profileDir && side === 'gateway' && r < 2
          ? `${g.broker}-qos${qos}.${r === 0 ? 'cpuprofile' : 'heapprofile'}`
          : undefined
      const run = await uplinkRun(g, side, qos, load, g.opts.measureMs, profile)
      g.log(`  uplink ${g.broker} QoS ${qos} ${side} run ${r + 1}: ${describe(run)}`)
      runs.set(side, [...(runs.get(side) ?? []), run])
    }
  }
  return order.map((side) => {
    const rs = runs.get(side)!
    return {
      broker: g.broker,
      qos,
      side,
      clients: g.opts.devices,
      msgs_per_s: round(median(rs.map((r) => r.msgs_per_s)), 4),
      lost: sum(rs.map((r) => r.lost)),
      rejected: sum(rs.map((r) => r.rejected)),
      gateway_cpu_us_per_msg: round(median(rs.map((r) => r.gateway_cpu_us_per_msg)), 3),
      gateway_syscalls_per_msg: {
        read: round(median(rs.map((r) => r.gateway_syscalls_per_msg.read)), 3),
        write: round(median(rs.map((r) => r.gateway_syscalls_per_msg.write)), 3),
      },
      all_cpu_us_per_msg: round(median(rs.map((r) => r.all_cpu_us_per_msg)), 3),
      cpu_pct: medianByKey(rs.map((r) => r.cpu_pct)),
      runs: rs,
    }
  })
}

async function latency(g: Group): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = []
  for (const rate of g.opts.rates) {
    const runs = new Map<Side, UplinkRun[]>()
    const order = g.opts.sides.filter((s): s is Side => s !== 'raw')
    for (let r = 0; r < g.opts.runs; r++) {
      for (const side of order) {
        const run = await uplinkRun(g, side, 1, { mode: 'open', window: 0, rate }, g.opts.latencyMeasureMs)
        g.log(`  latency ${g.broker} ${rate}/s ${side} run ${r + 1}: ${describe(run)}`)
        runs.set(side, [...(runs.get(side) ?? []), run])
      }
    }
    for (const side of order) {
      const rs = runs.get(side)!
      rows.push({
        broker: g.broker,
        rate,
        side,
        achieved_msgs_per_s: round(median(rs.map((r) => r.msgs_per_s)), 4),
        p50_ms: round(median(rs.map((r) => r.latency.p50_ms)), 3),
        p99_ms: round(median(rs.map((r) => r.latency.p99_ms)), 3),
        max_ms: round(median(rs.map((r) => r.latency.max_ms)), 3),
        samples: sum(rs.map((r) => r.latency.count)),
        lost: sum(rs.map((r) => r.lost)),
        runs: rs,
      })
    }
  }
  return rows
}

/**
 * MQTT publisher → broker → gateway → devices. Each device generator process publishes to its own
 * devices' down topics: closed loop, `downlinkWindow` messages on the way to each device (the next
 * is published when the device has received one) for throughput; then open loop at 1k msgs/s for
 * latency. The direct side: the same generators' devices become direct MQTT clients subscribed to
 * the same down topics, and the same publisher runs the same closed loop to them (the ratio's
 * denominator). Runs last in the group: it leaves the generators on the direct side.
 */
async function downlink(g: Group): Promise<DownlinkRow> {
  const runs: DownlinkRun[] = []
  const latencyRuns: DownlinkRun[] = []
  const directRuns: DownlinkRun[] = []
  const rate = g.opts.rates[0]!
  const direct = g.opts.sides.includes('direct')
  for (let r = 0; r < g.opts.runs; r++) {
    if (r > 0 && direct) await useDevices(g, 'hypertcp')
    const closed = await downlinkRun(g, 'closed', g.opts.measureMs)
    const open = await downlinkRun(g, 'open', g.opts.measureMs, rate)
    g.log(
      `  downlink ${g.broker} gateway run ${r + 1}: ${Math.round(closed.msgs_per_s)} msgs/s, p99 ${closed.latency.p99_ms} ms, ` +
        `dropped ${closed.dropped}; at ${rate}/s: p99 ${open.latency.p99_ms} ms, dropped ${open.dropped}`,
    )
    runs.push(closed)
    latencyRuns.push(open)
    if (!direct) continue
    await useDevices(g, 'mqtt')
    const d = await downlinkRun(g, 'closed', g.opts.measureMs)
    g.log(
      `  downlink ${g.broker} direct run ${r + 1}: ${Math.round(d.msgs_per_s)} msgs/s, p99 ${d.latency.p99_ms} ms, ` +
        `dropped ${d.dropped}`,
    )
    directRuns.push(d)
  }
  const med = (rs: DownlinkRun[], f: (r: DownlinkRun) => number) => round(median(rs.map(f)), 3)
  const msgsPerS = round(median(runs.map((r) => r.msgs_per_s)), 4)
  const directMsgsPerS = direct ? round(median(directRuns.map((r) => r.msgs_per_s)), 4) : null
  return {
    broker: g.broker,
    devices: g.opts.devices,
    window: g.opts.downlinkWindow,
    msgs_per_s: msgsPerS,
    p50_ms: med(runs, (r) => r.latency.p50_ms),
    p99_ms: med(runs, (r) => r.latency.p99_ms),
    max_ms: med(runs, (r) => r.latency.max_ms),
    latency_rate: rate,
    latency_p50_ms: med(latencyRuns, (r) => r.latency.p50_ms),
    latency_p99_ms: med(latencyRuns, (r) => r.latency.p99_ms),
    latency_max_ms: med(latencyRuns, (r) => r.latency.max_ms),
    dropped: sum([...runs, ...latencyRuns].map((r) => r.dropped)),
    direct_msgs_per_s: directMsgsPerS,
    direct_p50_ms: direct ? med(directRuns, (r) => r.latency.p50_ms) : null,
    direct_p99_ms: direct ? med(directRuns, (r) => r.latency.p99_ms) : null,
    direct_max_ms: direct ? med(directRuns, (r) => r.latency.max_ms) : null,
    direct_dropped: sum(directRuns.map((r) => r.dropped)),
    ratio: directMsgsPerS ? round(msgsPerS / directMsgsPerS, 3) : null,
    at_most_once_msgs_per_s: null,
    at_least_once_share: null,
    at_most_once_runs: [],
    runs,
    latency_runs: latencyRuns,
    direct_runs: directRuns,
  }
}

/**
 * The downlink's closed loop again through a gateway with `downlinkDelivery: at-most-once`, once the
 * first one has stopped (it would keep, for its devices gone, what the second one delivers): the
 * share of the throughput at-least-once keeps.
 */
async function atMostOnce(
  row: DownlinkRow,
  base: GatewaySpec,
  on: {
    opts: BenchOptions
    rig: Rig
    broker: BrokerKind
    log: (line: string) => void
    mosquitto?: { pid: number } | undefined
  },
): Promise<void> {
  const spec: GatewaySpec = {
    ...base,
    port: await freePort(),
    brokerPort: await freePort(),
    flags: { ...base.flags, 'downlink-delivery': 'at-most-once' },
  }
  on.log(`${on.broker}: starting a gateway with downlink-delivery at-most-once`)
  const gw = await GatewayProc.start(spec)
  try {
    const g: Group = { ...on, gw, brokerPid: on.mosquitto?.pid ?? 0, creditPort: 0 }
    await useDevices(g, 'hypertcp')
    for (let r = 0; r < on.opts.runs; r++) {
      const run = await downlinkRun(g, 'closed', on.opts.measureMs)
      on.log(`  downlink ${on.broker} at-most-once run ${r + 1}: ${Math.round(run.msgs_per_s)} msgs/s`)
      row.at_most_once_runs.push(run)
    }
    await Promise.all(on.rig.devices.map((w) => w.call('closeAll', null)))
  } finally {
    await gw.stop('SIGTERM')
  }
  const amo = round(median(row.at_most_once_runs.map((r) => r.msgs_per_s)), 4)
  row.at_most_once_msgs_per_s = amo
  row.at_least_once_share = amo > 0 ? round(row.msgs_per_s / amo, 3) : null
}

async function downlinkRun(
  g: Group,
  mode: 'closed' | 'open',
  measureMs: number,
  rate = 0,
): Promise<DownlinkRun> {
  const workers = g.rig.devices
  await settle(g)
  const start = nowUs() + 20_000
  const w0 = start + g.opts.warmupMs * 1000
  const w1 = w0 + measureMs * 1000
  await sleepUntil(start)
  const roles: Record<string, number[]> = { gateway: [g.gw.pid], generators: workers.map((w) => w.pid) }
  if (g.brokerPid) roles.mosquitto = [g.brokerPid]
  await Promise.all(
    workers.map((w) =>
      w.call('downlinkStart', {
        broker: g.gw.broker,
        mode,
        window: g.opts.downlinkWindow,
        rate: rate / workers.length,
        windowStartUs: w0,
        windowEndUs: w1,
      }),
    ),
  )
  await sleepUntil(w0)
  const before = sampleRoles(roles)
  await sleepUntil(w1)
  const after = sampleRoles(roles)
  const results = await Promise.all(workers.map((w) => w.call('downlinkStop', null)))
  const hist = newHistogram()
  for (const res of results) hist.add(decodeHistogram(res.histogram))
  const inWindow = sum(results.map((x) => x.receivedInWindow))
  const cpu_pct = cpuPercent(before, after, measureMs * 1000)
  const n = Math.max(1, inWindow)
  return {
    msgs_per_s: round(inWindow / (measureMs / 1000), 4),
    published: sum(results.map((x) => x.published)),
    received: sum(results.map((x) => x.received)),
    dropped: sum(results.map((x) => x.pubacked - x.received)),
    duplicates: sum(results.map((x) => x.duplicates)),
    latency: summarize(hist),
    gateway_cpu_us_per_msg: round((after.gateway!.cpuUs - before.gateway!.cpuUs) / n, 3),
    cpu_pct,
    all_cpu_us_per_msg: round(((sum(Object.values(cpu_pct)) / 100) * (measureMs * 1000)) / n, 3),
  }
}
