/**
 * Scale: as many idle, logged-in devices as one gateway process can hold (bounded by its
 * open-files limit: one descriptor per device), the memory they cost, how fast they log in, and
 * how long they take to all come back after the gateway is killed and started again; then, for the
 * login ratio, how fast as many direct MQTT clients log in to the same broker (CONNECT + SUBSCRIBE
 * to their own down topic), through the same generators and the same ramp.
 */

import { join } from 'node:path'
import type { Mosquitto } from '../../test/helpers/mosquitto.js'
import { freePort } from '../../test/helpers/net.js'
import type { Status } from '../gen/devices.js'
import { nowUs, sleep } from '../lib/clock.js'
import { GatewayProc, type GatewaySpec } from '../lib/gateway.js'
import { startBenchMosquitto } from '../lib/mosquitto.js'
import type { BenchOptions, BrokerKind } from '../lib/options.js'
import { cpuPercent, cpuUsPer, listenOverflows, sampleRoles, waitQuiet } from '../lib/procs.js'
import type { Rig } from '../lib/rig.js'
import { median, medianByKey, round, split, sum } from '../lib/stats.js'

export interface ScaleRun {
  target: number
  /** Devices logged in at once at the end of the ramp. */
  online: number
  /** Gateway processes holding them (`workers`; 1 = one gateway). */
  gateway_workers: number
  /** Uplinks acknowledged per second with every device connected, one in flight per device. */
  msgs_per_s_connected: number
  login_s: number
  logins_per_s: number
  rss_before_kib: number
  rss_after_kib: number
  rss_kib_per_device: number
  heap_before_kib: number
  heap_after_kib: number
  heap_kib_per_device: number
  /** After SIGKILL and a new start on the same port: devices back, and when. */
  restart_back: number
  restart_s_from_kill: number
  restart_s_from_listen: number
  /** Seconds after the kill until 50 / 90 / 99 % of the devices were back (a long tail is typical of SYNs dropped by a full accept queue and retried by the kernel after 1, 2, 4 … s). */
  restart_s_p50: number
  restart_s_p90: number
  restart_s_p99: number
  /** Failed connection attempts of the devices meanwhile (refused while the gateway was down, reset, timed out). */
  restart_connect_errors: number
  gateway_start_s: number
  /** CPU (% of one core) of each process role during the login ramp. */
  login_cpu_pct: Record<string, number>
  /** The gateway's CPU time per login during the ramp, µs. */
  gateway_cpu_us_per_login: number
  /**
   * CPU µs per login of each role during the ramp, and of them `all`: on a saturated machine the
   * ramp's rate is its cores divided by `all`, which is what bounds the login ratio.
   */
  login_cpu_us: Record<string, number>
  /**
   * Handshakes dropped by a full accept queue during the ramp (this machine's TcpExt
   * ListenOverflows): each waited for a retransmission, 1 s or more. Non-zero: the ramp's rate is
   * partly the kernel's timer, not the server's.
   */
  listen_overflows: number
  /**
   * The direct side: as many MQTT clients, the same generators, ramp, concurrency and source
   * addresses, each logged in once its SUBACK (to its own `hypertcp/<id>/dn`) arrived.
   */
  direct_online: number
  direct_login_s: number
  direct_logins_per_s: number
  /** CPU (% of one core) per role during the direct ramp (the embedded broker is in the gateway process). */
  direct_login_cpu_pct: Record<string, number>
  /** CPU µs per login of each role (and `all`) during the direct ramp. */
  direct_login_cpu_us: Record<string, number>
  /**
   * The same during the direct ramp. Mosquitto listens with a backlog of 100, below the 200 logins
   * in progress per generator: it can overflow (an external broker on another host: not counted).
   */
  direct_listen_overflows: number
}

export interface ScaleRow {
  broker: BrokerKind
  target: number
  max_devices: number
  logins_per_s: number
  rss_kib_per_device: number
  heap_kib_per_device: number
  restart_s: number
  restart_s_from_listen: number
  restart_s_p90: number
  login_cpu_pct: Record<string, number>
  gateway_cpu_us_per_login: number
  direct_logins_per_s: number
  direct_login_cpu_pct: Record<string, number>
  login_cpu_us: Record<string, number>
  direct_login_cpu_us: Record<string, number>
  /** logins_per_s / direct_logins_per_s (medians). */
  login_ratio: number
  gateway_workers: number
  msgs_per_s_connected: number
  runs: ScaleRun[]
}

const KIB = 1024

export async function runScale(
  opts: BenchOptions,
  rig: Rig,
  broker: BrokerKind,
  log: (line: string) => void,
): Promise<ScaleRow> {
  // With workers, the gateway's and the generators' processes outnumber the cores many times over
  // (here 6 + 7 on 2): shared evenly, Mosquitto's one thread gets a fourteenth of the machine and
  // every login waits for it (bench/README, "100,000 devices"). A deployment gives the broker a
  // host or cores of its own; on one host, priority is the nearest thing.
  const mosquitto =
    broker === 'mosquitto'
      ? await startBenchMosquitto(opts.scaleWorkers > 1 ? -10 : undefined, log)
      : undefined
  const mqttUrl = broker === 'external' ? opts.brokerUrl : mosquitto?.url
  const runs: ScaleRun[] = []
  try {
    for (let r = 0; r < opts.scaleRuns; r++) {
      const profile =
        opts.profileDir && r === 0 ? join(opts.profileDir, `${broker}-logins.cpuprofile`) : undefined
      const run = await scaleRun(opts, rig, mqttUrl, mosquitto, log, profile)
      log(
        `  scale ${broker} run ${r + 1}: ${run.online}/${run.target} online, ${Math.round(run.logins_per_s)} logins/s, ` +
          `${run.rss_kib_per_device} KiB RSS and ${run.heap_kib_per_device} KiB heap per device, ` +
          `all back ${run.restart_s_from_kill} s after the kill (${run.restart_back} devices); ` +
          `ramp cpu ${Object.entries(run.login_cpu_pct)
            .map(([k, v]) => `${k} ${Math.round(v)} %`)
            .join(', ')}, gateway ${Math.round(run.gateway_cpu_us_per_login)} µs/login, ` +
          `all processes ${Math.round(run.login_cpu_us.all ?? Number.NaN)} µs/login; ` +
          `direct: ${run.direct_online}/${run.target} subscribed, ${Math.round(run.direct_logins_per_s)} logins/s, ` +
          `all processes ${Math.round(run.direct_login_cpu_us.all ?? Number.NaN)} µs/login ` +
          `(gateway/direct ${(run.logins_per_s / run.direct_logins_per_s).toFixed(2)})`,
      )
      if (run.listen_overflows > 0 || run.direct_listen_overflows > 0) {
        log(
          `  scale ${broker}: full accept queues dropped ${run.listen_overflows} handshakes during the gateway ramp, ` +
            `${run.direct_listen_overflows} during the direct one: those waited for a retransmission (1 s or more), ` +
            'and that ramp measured the timer more than the server',
        )
      }
      runs.push(run)
      // A run that did not get every device in (or back) is a failed run: repeating it only
      // repeats the wait.
      if (run.online < run.target || run.restart_back < run.online || run.direct_online < run.target) break
    }
  } finally {
    await mosquitto?.dispose()
  }
  const loginsPerS = round(median(runs.map((r) => r.logins_per_s)), 4)
  const directLoginsPerS = round(median(runs.map((r) => r.direct_logins_per_s)), 4)
  return {
    broker,
    target: opts.scaleDevices,
    max_devices: median(runs.map((r) => r.online)),
    logins_per_s: loginsPerS,
    rss_kib_per_device: round(median(runs.map((r) => r.rss_kib_per_device)), 3),
    heap_kib_per_device: round(median(runs.map((r) => r.heap_kib_per_device)), 3),
    restart_s: round(median(runs.map((r) => r.restart_s_from_kill)), 3),
    restart_s_from_listen: round(median(runs.map((r) => r.restart_s_from_listen)), 3),
    restart_s_p90: round(median(runs.map((r) => r.restart_s_p90)), 3),
    login_cpu_pct: medianByKey(runs.map((r) => r.login_cpu_pct)),
    gateway_cpu_us_per_login: round(median(runs.map((r) => r.gateway_cpu_us_per_login)), 3),
    direct_logins_per_s: directLoginsPerS,
    direct_login_cpu_pct: medianByKey(runs.map((r) => r.direct_login_cpu_pct)),
    login_cpu_us: medianByKey(runs.map((r) => r.login_cpu_us)),
    direct_login_cpu_us: medianByKey(runs.map((r) => r.direct_login_cpu_us)),
    login_ratio: round(loginsPerS / directLoginsPerS, 3),
    gateway_workers: opts.scaleWorkers,
    msgs_per_s_connected: round(median(runs.map((r) => r.msgs_per_s_connected)), 4),
    runs,
  }
}

async function scaleRun(
  opts: BenchOptions,
  rig: Rig,
  mqttUrl: string | undefined,
  mosquitto: Mosquitto | undefined,
  log: (line: string) => void,
  profile: string | undefined,
): Promise<ScaleRun> {
  const target = opts.scaleDevices
  // More devices than one process's descriptors: gateway workers, ready when the primary says so.
  const gatewayWorkers = opts.scaleWorkers
  const adminPort = gatewayWorkers > 1 ? await freePort() : undefined
  const spec: GatewaySpec = {
    dist: opts.gateway,
    port: await freePort(),
    brokerPort: await freePort(),
    devices: target,
    qosUp: 1,
    flags: {
      ...(adminPort !== undefined
        ? {
            workers: String(gatewayWorkers),
            'admin-port': String(adminPort),
            // Round robin hands connections over one at a time per worker: too slow for a restart
            // of 100,000 (README "Workers"). `--gateway-flag worker-balancing=round-robin` for it.
            'worker-balancing': 'kernel',
          }
        : {}),
      ...opts.gatewayFlags,
    },
    nodeArgs: opts.gatewayNodeArgs,
    ...(mqttUrl !== undefined ? { mqttUrl } : {}),
    // Workers subscribe the topics of every device they hold, and read their presence, first.
    ...(gatewayWorkers > 1 ? { startTimeoutMs: 120_000 } : {}),
  }
  const start = async (): Promise<GatewayProc> => {
    const started = await GatewayProc.start(spec)
    if (adminPort !== undefined) await waitReady(adminPort, 60_000)
    return started
  }
  let gw = await start()
  const workers = rig.allDevices
  const ranges = split(target, workers.length)
  const limitMs = opts.scaleRampS * 1000
  // One broker process (Aedes in the gateway, or Mosquitto) takes at most its own descriptors: a
  // direct side past them would measure that limit, not logins.
  const directSide = gatewayWorkers === 1
  try {
    await sleep(300)
    const mem0 = await gw.memory(true)
    const rss0 = gw.sample().rssKiB

    // The ramp: each generator keeps a bounded number of logins in progress, so what is measured
    // is how fast the gateway completes logins, not how the kernel copes with a SYN flood.
    await Promise.all(
      workers.map((w, i) => w.call('init', { host: '127.0.0.1', port: spec.port, ...ranges[i]! })),
    )
    if (profile) await gw.profileStart('cpu')
    const roles: Record<string, number[]> = { gateway: [gw.pid], generators: workers.map((w) => w.pid) }
    if (mosquitto) roles.mosquitto = [mosquitto.pid]
    const cpuBefore = sampleRoles(roles)
    const overflowsBefore = listenOverflows()
    const rampStartUs = nowUs()
    const logins = await Promise.all(
      workers.map((w) => w.call('login', { concurrency: opts.loginConcurrency, timeoutMs: limitMs })),
    )
    const rampUs = nowUs() - rampStartUs
    const cpuAfter = sampleRoles(roles)
    const overflows = listenOverflows() - overflowsBefore
    if (profile) {
      await gw.profileStop(profile)
      log(`  profile: ${profile} (the profiler slows this run: not a result)`)
    }
    const online = sum(logins.map((l) => l.online))
    const loginUs = Math.max(...logins.map((l) => l.lastLoginUs)) - Math.min(...logins.map((l) => l.startUs))
    const loginCpuUs = cpuUsPer(cpuBefore, cpuAfter, online)

    await sleep(1000)
    const mem1 = await gw.memory(true)
    const rss1 = gw.sample().rssKiB
    // Messages with every device connected: each sends one at a time, the next on its ack.
    const connectedRate = await uplinkAtScale(workers, opts.measureMs)
    log(`  scale: ${Math.round(connectedRate)} msgs/s with ${online} devices connected (one in flight each)`)

    // Restart: the devices reconnect by themselves (jittered, with backoff), as firmware does.
    // Past one gateway process the devices retry as the project's firmware does (backoff up to
    // 30 s): at 100,000 the bench's 1 s cap is a flood of attempts at a gateway still starting.
    const retryCapMs = gatewayWorkers > 1 ? 30_000 : 1000
    await Promise.all(workers.map((w) => w.call('reconnect', { enabled: true, retryCapMs })))
    const errorsBefore = sum(
      (await Promise.all(workers.map((w) => w.call('status', null)))).map((s) => s.connectErrors),
    )
    const killUs = nowUs()
    await gw.stop('SIGKILL')
    gw = await start()
    const listenUs = nowUs()
    let back = 0
    let lastLoginUs = listenUs
    let errors = 0
    const when = { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN }
    const deadline = Date.now() + limitMs
    let nextReport = Date.now() + 10_000
    const before = await Promise.all(workers.map((w) => w.call('status', null)))
    while (Date.now() < deadline) {
      const status = await Promise.all(workers.map((w) => w.call('status', null)))
      const t = round((nowUs() - killUs) / 1e6, 3)
      back = sum(status.map((s) => s.online))
      errors = sum(status.map((s) => s.connectErrors)) - errorsBefore
      if (Date.now() >= nextReport) {
        // Progress, to tell a slow gateway from refused logins or connections it drops.
        nextReport += 10_000
        const delta = (k: 'loginFailures' | 'closes' | 'logins') =>
          sum(status.map((s) => s[k])) - sum(before.map((s) => s[k]))
        log(
          `  scale: ${t} s after the kill: ${back} back, ${delta('logins')} logins, ${delta('loginFailures')} refused, ` +
            `${errors} connect errors, ${delta('closes')} closes ${JSON.stringify(closeKinds(status, before))}${await closeReasons(adminPort)}`,
        )
      }
      lastLoginUs = Math.max(...status.map((s) => s.lastLoginUs))
      if (Number.isNaN(when.p50) && back >= online * 0.5) when.p50 = t
      if (Number.isNaN(when.p90) && back >= online * 0.9) when.p90 = t
      if (Number.isNaN(when.p99) && back >= online * 0.99) when.p99 = t
      if (back >= online) break
      await sleep(50)
    }
    if (back < online) {
      log(`  scale: only ${back} of ${online} devices came back within ${opts.scaleRampS} s`)
      for (const line of gw.output.slice(-20)) log(`  gateway: ${line}`)
    }

    // The direct side, on a gateway started afresh as for its own ramp. Not the one the devices
    // have just left: each left its retained presence in the embedded broker, and Aedes's
    // in-memory store scans every retained message on each SUBSCRIBE (~0.3 µs each on the 2-core
    // bench machine: 2,000 left made a direct login cost 2.2 times as much; at 19,700 it would be
    // ~6 ms more each), which the gateway ramp, starting from an empty broker, never paid.
    await Promise.all(workers.map((w) => w.call('closeAll', null)))
    let direct = {
      online: Number.NaN,
      loginUs: Number.NaN,
      cpuPct: {} as Record<string, number>,
      cpuUs: {} as Record<string, number>,
      overflows: 0,
    }
    if (directSide) {
      await gw.stop('SIGTERM')
      gw = await start()
      direct = await directRamp(opts, workers, ranges, gw, mosquitto)
    }
    if (directSide && direct.online < target)
      log(`  scale: only ${direct.online} of ${target} direct MQTT clients logged in`)
    return {
      target,
      online,
      login_s: round(loginUs / 1e6, 4),
      logins_per_s: round(online / (loginUs / 1e6), 4),
      rss_before_kib: rss0,
      rss_after_kib: rss1,
      rss_kib_per_device: round((rss1 - rss0) / online, 3),
      heap_before_kib: Math.round(mem0.heapUsed / KIB),
      heap_after_kib: Math.round(mem1.heapUsed / KIB),
      // With workers the probe answers for the primary only: no per-device heap figure then.
      heap_kib_per_device: directSide ? round((mem1.heapUsed - mem0.heapUsed) / KIB / online, 3) : Number.NaN,
      gateway_workers: gatewayWorkers,
      msgs_per_s_connected: round(connectedRate, 4),
      restart_back: back,
      restart_s_from_kill: round((lastLoginUs - killUs) / 1e6, 4),
      restart_s_from_listen: round((lastLoginUs - listenUs) / 1e6, 4),
      restart_s_p50: when.p50,
      restart_s_p90: when.p90,
      restart_s_p99: when.p99,
      restart_connect_errors: errors,
      gateway_start_s: round((listenUs - killUs) / 1e6, 4),
      login_cpu_pct: cpuPercent(cpuBefore, cpuAfter, rampUs),
      login_cpu_us: loginCpuUs,
      gateway_cpu_us_per_login: loginCpuUs.gateway!,
      direct_online: direct.online,
      direct_login_s: round(direct.loginUs / 1e6, 4),
      direct_logins_per_s: round(direct.online / (direct.loginUs / 1e6), 4),
      listen_overflows: overflows,
      direct_login_cpu_pct: direct.cpuPct,
      direct_login_cpu_us: direct.cpuUs,
      direct_listen_overflows: direct.overflows,
    }
  } finally {
    await Promise.all(workers.map((w) => w.call('closeAll', null)))
    await gw.stop('SIGTERM')
  }
}

/**
 * The login ratio's denominator: the same generators log in as many direct MQTT clients to the
 * broker the gateway uses (its embedded one: in the gateway process, idle), each one TCP connect,
 * CONNECT, CONNACK, SUBSCRIBE to its own down topic, SUBACK — with the gateway ramp's concurrency
 * per generator and its source addresses (gen/devices.ts).
 */
async function directRamp(
  opts: BenchOptions,
  workers: Rig['allDevices'],
  ranges: { first: number; count: number }[],
  gw: GatewayProc,
  mosquitto: Mosquitto | undefined,
): Promise<{
  online: number
  loginUs: number
  cpuPct: Record<string, number>
  cpuUs: Record<string, number>
  overflows: number
}> {
  const roles: Record<string, number[]> = { gateway: [gw.pid], generators: workers.map((w) => w.pid) }
  if (mosquitto) roles.mosquitto = [mosquitto.pid]
  // Until the gateway's start (and, with Mosquitto, the old one's leaving) has settled.
  await waitQuiet(Object.values(roles).flat())
  const broker = gw.broker
  await Promise.all(workers.map((w, i) => w.call('init', { protocol: 'mqtt', ...broker, ...ranges[i]! })))
  const before = sampleRoles(roles)
  const overflowsBefore = listenOverflows()
  const startUs = nowUs()
  const logins = await Promise.all(
    workers.map((w) =>
      w.call('login', { concurrency: opts.loginConcurrency, timeoutMs: opts.scaleRampS * 1000 }),
    ),
  )
  const after = sampleRoles(roles)
  const online = sum(logins.map((l) => l.online))
  return {
    online,
    loginUs: Math.max(...logins.map((l) => l.lastLoginUs)) - Math.min(...logins.map((l) => l.startUs)),
    cpuPct: cpuPercent(before, after, nowUs() - startUs),
    cpuUs: cpuUsPer(before, after, online),
    overflows: listenOverflows() - overflowsBefore,
  }
}

/** Closed-loop uplinks from every connected device (one in flight each) for `ms`: acknowledged per second. */
async function uplinkAtScale(workers: Rig['allDevices'], ms: number): Promise<number> {
  await Promise.all(workers.map((w) => w.call('uplinkStart', { mode: 'closed', window: 1, rate: 0 })))
  const startUs = nowUs()
  await sleep(ms)
  const results = await Promise.all(workers.map((w) => w.call('uplinkStop', null)))
  return sum(results.map((r) => r.acked)) / ((nowUs() - startUs) / 1e6)
}

/** Until the primary's admin listener says every worker is ready. */
async function waitReady(adminPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
      (r) => r.status,
      () => 0,
    )
    if (status === 200) return
    if (Date.now() > deadline) throw new Error(`gateway workers not ready within ${timeoutMs} ms`)
    await sleep(100)
  }
}

/** The gateway's own count of closed connections by reason (its admin API), for the progress lines. */
async function closeReasons(adminPort: number | undefined): Promise<string> {
  if (adminPort === undefined) return ''
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/stats`, {
      signal: AbortSignal.timeout(2000),
    })
    const stats = (await res.json()) as { closes?: Record<string, number>; refused?: Record<string, number> }
    return `; gateway: closes ${JSON.stringify(stats.closes ?? {})}, refused ${JSON.stringify(stats.refused ?? {})}`
  } catch (err) {
    return `; gateway stats: ${(err as Error).message}`
  }
}

/** The generators' closes since `before`, by what came before each (see Status.closesBy). */
function closeKinds(now: Status[], before: Status[]): Record<string, number> {
  const kinds: Record<string, number> = {}
  for (const s of now) for (const [k, n] of Object.entries(s.closesBy)) kinds[k] = (kinds[k] ?? 0) + n
  for (const s of before) for (const [k, n] of Object.entries(s.closesBy)) kinds[k] = (kinds[k] ?? 0) - n
  return kinds
}
