/**
 * Soak (`--soak`, not for CI): does the gateway's memory stay flat? RSS is sampled every 10 s
 * (as it is: no forced GC) while idle devices sit logged in — answering the gateway's keepalive
 * PINGs — and then across many connect / log in / disconnect cycles.
 */

import { join } from 'node:path'
import { freePort } from '../../test/helpers/net.js'
import { nowUs, sleep } from '../lib/clock.js'
import { GatewayProc } from '../lib/gateway.js'
import { startBenchMosquitto } from '../lib/mosquitto.js'
import type { BenchOptions, BrokerKind } from '../lib/options.js'
import type { Rig } from '../lib/rig.js'
import { round, split, sum } from '../lib/stats.js'

export interface RssSample {
  t_s: number
  rss_kib: number
  /** V8's heap at the same moment (no forced GC): committed, and in use; RSS less committed is memory outside V8's heap. */
  heap_total_kib: number
  heap_used_kib: number
  /** Devices online (idle phase) or cycles completed (churn phase). */
  progress: number
}

export interface SoakPhase {
  /** Every sample, warm-up included. */
  samples: RssSample[]
  /** Over the measured window (after the warm-up): first, last, lowest and highest RSS. */
  rss_first_kib: number
  rss_last_kib: number
  rss_min_kib: number
  rss_max_kib: number
  /** Last vs first sample of the window (depends on where each falls in the GC sawtooth). */
  change_pct: number
  /**
   * The growth over the window by a least-squares line through every sample of it, relative to
   * their mean: a trend, with the GC sawtooth averaged out instead of sampled at two points.
   */
  trend_pct: number
  /** (highest − lowest) / lowest over the window: how far from flat it ever was. */
  band_pct: number
  /** Over the same window: V8's committed heap, lowest and highest. */
  heap_total_min_kib: number
  heap_total_max_kib: number
  /** RSS less V8's committed heap (sockets, buffers, code, the runtime): lowest, highest, band. */
  outside_heap_min_kib: number
  outside_heap_max_kib: number
  outside_heap_band_pct: number
}

export interface SoakResult {
  broker: BrokerKind
  idle: SoakPhase & { devices: number; minutes: number; pings_answered: number }
  churn: SoakPhase & {
    cycles: number
    cycles_per_s: number
    concurrency: number
    failures: number
    /** The gateway's heap after a forced GC before and after the cycles, KiB: a leak grows it, GC slack does not. */
    heap_before_kib: number
    heap_after_kib: number
    /** The gateway's CPU (user + system) per cycle: what a GC setting that flattens RSS costs. */
    gateway_cpu_us_per_cycle: number
  }
}

const SAMPLE_MS = 10_000
/**
 * Idle devices are watched for this long before the measured minutes: the heap is still settling
 * from the login ramp for the first minute or so (the first full GC after it drops RSS by ~25 %).
 */
export const IDLE_WARMUP_MS = 120_000

function phase(samples: RssSample[], warm: (s: RssSample) => boolean): SoakPhase {
  const window = samples.filter(warm)
  const measured = window.length > 0 ? window : samples
  const rss = measured.map((s) => s.rss_kib)
  const first = rss[0]!
  const last = rss[rss.length - 1]!
  const min = Math.min(...rss)
  const max = Math.max(...rss)
  const heap = measured.map((s) => s.heap_total_kib)
  const outside = measured.map((s) => s.rss_kib - s.heap_total_kib)
  const outsideMin = Math.min(...outside)
  const outsideMax = Math.max(...outside)
  return {
    samples,
    rss_first_kib: first,
    rss_last_kib: last,
    rss_min_kib: min,
    rss_max_kib: max,
    change_pct: round(((last - first) / first) * 100, 3),
    trend_pct: round(trendPct(measured), 3),
    band_pct: round(((max - min) / min) * 100, 3),
    heap_total_min_kib: Math.min(...heap),
    heap_total_max_kib: Math.max(...heap),
    outside_heap_min_kib: outsideMin,
    outside_heap_max_kib: outsideMax,
    outside_heap_band_pct: round(((outsideMax - outsideMin) / outsideMin) * 100, 3),
  }
}

/** Least-squares slope of RSS over time × the window's duration, as % of the mean RSS. */
export function trendPct(samples: readonly RssSample[]): number {
  const n = samples.length
  if (n < 2) return 0
  let st = 0
  let sr = 0
  for (const s of samples) {
    st += s.t_s
    sr += s.rss_kib
  }
  const mt = st / n
  const mr = sr / n
  let cov = 0
  let vt = 0
  for (const s of samples) {
    cov += (s.t_s - mt) * (s.rss_kib - mr)
    vt += (s.t_s - mt) ** 2
  }
  if (vt === 0) return 0
  const duration = samples[n - 1]!.t_s - samples[0]!.t_s
  return ((cov / vt) * duration * 100) / mr
}

async function sampleMemory(gw: GatewayProc, t_s: number, progress: number): Promise<RssSample> {
  const rss_kib = gw.sample().rssKiB
  const { heapTotal, heapUsed } = await gw.memory(false)
  return {
    t_s,
    rss_kib,
    heap_total_kib: Math.round(heapTotal / 1024),
    heap_used_kib: Math.round(heapUsed / 1024),
    progress,
  }
}

/** The soak runs against the first of `--brokers` (default: the embedded one). */
export async function runSoak(
  opts: BenchOptions,
  rig: Rig,
  log: (line: string) => void,
): Promise<SoakResult> {
  const devices = Math.min(opts.scaleDevices, 10_000)
  const broker = opts.brokers[0]!
  const mosquitto = broker === 'mosquitto' ? await startBenchMosquitto() : undefined
  try {
    return await soak(opts, rig, devices, broker, mosquitto?.url, log)
  } finally {
    await mosquitto?.dispose()
  }
}

async function soak(
  opts: BenchOptions,
  rig: Rig,
  devices: number,
  broker: BrokerKind,
  mqttUrl: string | undefined,
  log: (line: string) => void,
): Promise<SoakResult> {
  const spec = {
    ...(mqttUrl ? { mqttUrl } : {}),
    dist: opts.gateway,
    port: await freePort(),
    brokerPort: await freePort(),
    devices,
    qosUp: 1 as const,
    flags: opts.gatewayFlags,
    nodeArgs: opts.gatewayNodeArgs,
  }
  const gw = await GatewayProc.start(spec)
  const workers = rig.allDevices
  const ranges = split(devices, workers.length)
  try {
    // Idle: devices logged in, silent except for answering the gateway's PINGs ([HT-3.4]).
    await Promise.all(
      workers.map((w, i) => w.call('init', { host: '127.0.0.1', port: spec.port, ...ranges[i]! })),
    )
    await Promise.all(workers.map((w) => w.call('login', { concurrency: 200, timeoutMs: 120_000 })))
    const idleSamples: RssSample[] = []
    const t0 = nowUs()
    const idleMs = opts.soakIdleMinutes * 60_000
    let pings = 0
    for (let t = 0; t <= IDLE_WARMUP_MS + idleMs; t += SAMPLE_MS) {
      const status = await Promise.all(workers.map((w) => w.call('status', null)))
      pings = sum(status.map((s) => s.pingsAnswered))
      const online = sum(status.map((s) => s.online))
      idleSamples.push(await sampleMemory(gw, round((nowUs() - t0) / 1e6, 4), online))
      log(
        `  soak idle ${Math.round(t / 1000)} s: RSS ${idleSamples.at(-1)!.rss_kib} KiB, ${online} online, ${pings} pings answered`,
      )
      if (t < IDLE_WARMUP_MS + idleMs) await sleep(SAMPLE_MS - ((nowUs() - t0) / 1000 - t))
    }
    await Promise.all(workers.map((w) => w.call('closeAll', null)))
    await sleep(3000)

    // Churn: a few hundred devices at a time, each connecting, logging in and leaving again.
    const concurrency = 100
    const perWorker = Math.ceil(opts.soakCycles / workers.length)
    await Promise.all(
      workers.map((w, i) => w.call('init', { host: '127.0.0.1', port: spec.port, ...ranges[i]! })),
    )
    const heapBefore = (await gw.memory(true)).heapUsed
    const profile = opts.profileDir
      ? join(opts.profileDir, `${broker}-churn-promoted.heapprofile`)
      : undefined
    if (profile) await gw.profileStart('promoted')
    const cpu0 = gw.sample().cpuUs
    await Promise.all(workers.map((w) => w.call('churnStart', { concurrency, cycles: perWorker })))
    const churnSamples: RssSample[] = []
    const c0 = nowUs()
    let cycles = 0
    let failures = 0
    for (;;) {
      await sleep(SAMPLE_MS)
      const status = await Promise.all(workers.map((w) => w.call('churnStatus', null)))
      cycles = sum(status.map((s) => s.cycles))
      failures = sum(status.map((s) => s.failures))
      churnSamples.push(await sampleMemory(gw, round((nowUs() - c0) / 1e6, 4), cycles))
      log(`  soak churn: ${cycles} cycles, RSS ${churnSamples.at(-1)!.rss_kib} KiB`)
      if (status.every((s) => !s.running)) break
    }
    const seconds = (nowUs() - c0) / 1e6
    const cpuUs = gw.sample().cpuUs - cpu0
    if (profile) {
      await gw.profileStop(profile)
      log(
        `  profile: ${profile} (what reached the old generation; the profiler slows the churn: not a result)`,
      )
    }
    await sleep(1000)
    const heapAfter = (await gw.memory(true)).heapUsed
    log(
      `  soak churn: heap after GC ${Math.round(heapBefore / 1024)} KiB before, ${Math.round(heapAfter / 1024)} KiB after`,
    )
    return {
      broker,
      idle: {
        ...phase(idleSamples, (s) => s.t_s * 1000 >= IDLE_WARMUP_MS - SAMPLE_MS / 2),
        devices,
        minutes: opts.soakIdleMinutes,
        pings_answered: pings,
      },
      churn: {
        ...phase(churnSamples, (s) => s.progress >= opts.soakCycles / 10),
        cycles,
        cycles_per_s: round(cycles / seconds, 4),
        concurrency: concurrency * workers.length,
        failures,
        heap_before_kib: Math.round(heapBefore / 1024),
        heap_after_kib: Math.round(heapAfter / 1024),
        gateway_cpu_us_per_cycle: round(cpuUs / Math.max(1, cycles), 3),
      },
    }
  } finally {
    await Promise.all(workers.map((w) => w.call('closeAll', null)))
    await gw.stop('SIGTERM')
  }
}
