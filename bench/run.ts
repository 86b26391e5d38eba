/**
 * `npm run bench [-- --quick | --soak]`: the gateway against devices talking MQTT directly, in one
 * run on one machine, side by side. Progress goes to stderr, the table to stdout, everything to
 * bench/results/latest.json (machine first). Exit code 1 when a run failed (an acknowledged message
 * lost, messages that never settled, devices that did not log in or come back) — never because a
 * figure is slow.
 *
 * Processes: this orchestrator; the gateway (built CLI, its own process); Mosquitto when used; the
 * HyperTCP device generators, the direct MQTT client generators and the counting subscriber
 * (bench/gen/*, forked). See bench/README.md.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { gitDescribe, machineInfo } from './lib/machine.js'
import { MOSQUITTO_SETTINGS } from './lib/mosquitto.js'
import { redactUrl } from './lib/mqtt-stream.js'
import { parseOptions } from './lib/options.js'
import { killAll } from './lib/procs.js'
import { headline, type Results, renderTable } from './lib/report.js'
import { Rig } from './lib/rig.js'
import { type MessageResults, runMessages } from './scenarios/messages.js'
import { runScale, type ScaleRow } from './scenarios/scale.js'
import { runSoak, type SoakResult } from './scenarios/soak.js'

const started = Date.now()
const argv = process.argv.slice(2)
const opts = parseOptions(argv, process.cwd())
const log = (line: string) => process.stderr.write(`${line}\n`)

if (opts.build) {
  log('building the gateway (npm run build)')
  const built = spawnSync('npm', ['run', 'build', '--silent'], { stdio: ['ignore', 2, 2] })
  if (built.status !== 0) {
    log('bench: npm run build failed')
    process.exit(1)
  }
}

const machine = machineInfo()
log(
  `machine: ${machine.cpu_model}, ${machine.cores} cores, node ${machine.node}, open files ${machine.open_files_limit}`,
)

const messages: MessageResults = { uplink: [], latency: [], downlink: [], gateway_flags: [], warnings: [] }
const scale: ScaleRow[] = []
let soak: SoakResult | undefined
const failures: string[] = []

const wantsMessages = opts.scenarios.some((s) => s !== 'scale')
const rig = new Rig(
  opts.procs,
  opts.scenarios.includes('scale') || opts.mode === 'soak' ? opts.scaleProcs : 0,
  opts.rawBaseline && opts.scenarios.includes('uplink'),
)
try {
  if (opts.mode === 'soak') {
    soak = await runSoak(opts, rig, log)
  } else {
    if (wantsMessages) {
      for (const broker of opts.brokers) {
        const r = await runMessages(opts, rig, broker, log)
        messages.uplink.push(...r.uplink)
        messages.latency.push(...r.latency)
        messages.downlink.push(...r.downlink)
        messages.gateway_flags = r.gateway_flags
        messages.warnings.push(...r.warnings)
      }
    }
    if (opts.scenarios.includes('scale')) {
      // Quick mode keeps to the standalone case; the full run measures both.
      for (const broker of opts.mode === 'quick' ? opts.brokers.slice(0, 1) : opts.brokers) {
        scale.push(await runScale(opts, rig, broker, log))
      }
    }
  }
} catch (err) {
  failures.push(`benchmark error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
} finally {
  await rig.stop().catch(() => {})
  killAll()
}

for (const row of messages.uplink) {
  const what = `uplink ${row.broker} QoS ${row.qos} ${row.side}`
  if (row.qos === 1 && row.lost > 0) failures.push(`${what}: ${row.lost} acknowledged messages lost`)
  const unacked = row.runs.reduce((n, r) => n + r.unacked, 0)
  if (unacked > 0) failures.push(`${what}: ${unacked} messages never acknowledged`)
  if (row.rejected > 0) failures.push(`${what}: ${row.rejected} uplinks refused by the gateway`)
}
for (const row of messages.latency) {
  if (row.lost > 0)
    failures.push(`latency ${row.broker} ${row.rate}/s ${row.side}: ${row.lost} acknowledged messages lost`)
}
for (const row of scale) {
  for (const run of row.runs) {
    if (run.online < run.target)
      failures.push(`scale ${row.broker}: only ${run.online} of ${run.target} devices logged in`)
    // A ramp that did not complete has no rate: the login ratio would be meaningless.
    if (run.direct_online < run.target) {
      failures.push(
        `scale ${row.broker}: only ${run.direct_online} of ${run.target} direct MQTT clients logged in`,
      )
    }
    if (run.restart_back < run.online) {
      failures.push(
        `scale ${row.broker}: ${run.restart_back} of ${run.online} devices back after the restart`,
      )
    }
  }
}

// The broker URL may carry credentials: recorded only redacted.
const recordedArgv = argv.map((a) =>
  opts.brokerUrl !== undefined && a.includes(opts.brokerUrl)
    ? a.replace(opts.brokerUrl, redactUrl(opts.brokerUrl))
    : a,
)
const results: Results = {
  machine,
  command: `npm run bench${recordedArgv.length > 0 ? ` -- ${recordedArgv.join(' ')}` : ''}`,
  mode: opts.mode,
  date: new Date().toISOString(),
  ...headline(messages.uplink, messages.latency, messages.downlink, scale),
  elapsed_s: Math.round((Date.now() - started) / 100) / 10,
  gateway: {
    dist: opts.gateway,
    // The commit only describes dist/ built from this work tree, not another --gateway build.
    commit: opts.gateway === resolve('dist') ? gitDescribe(process.cwd()) : null,
    flags: messages.gateway_flags,
    node_args: opts.gatewayNodeArgs,
  },
  settings: {
    runs: opts.runs,
    warmup_ms: opts.warmupMs,
    measure_ms: opts.measureMs,
    latency_measure_ms: opts.latencyMeasureMs,
    devices: opts.devices,
    window: opts.window,
    generator_processes: opts.procs,
    rates: opts.rates,
    downlink_window: opts.downlinkWindow,
    scale_devices: opts.scaleDevices,
    scale_runs: opts.scaleRuns,
    login_concurrency: opts.loginConcurrency,
    scale_generator_processes: opts.scaleProcs,
    scale_time_limit_s: opts.scaleRampS,
    payload: '{"d":…,"s":…,"t":…} (49 bytes); HyperTCP frame 85 bytes',
    mosquitto: MOSQUITTO_SETTINGS,
    broker_url: opts.brokerUrl === undefined ? null : redactUrl(opts.brokerUrl),
    direct_clients: 'MQTT.js 5, one client per device, MQTT 3.1.1, clean session',
    direct_login_and_downlink_clients:
      'bare MQTT 3.1.1 clients in the device generators (mqtt-packet), one per device, clean session, ' +
      'SUBSCRIBE hypertcp/<id>/dn QoS 1',
    clock: 'CLOCK_MONOTONIC (process.hrtime), shared by all processes',
  },
  uplink: messages.uplink,
  latency: messages.latency,
  downlink: messages.downlink,
  scale,
  ...(soak ? { soak } : {}),
  failures,
  gateway_output: messages.warnings.slice(0, 50),
}

mkdirSync(dirname(opts.out), { recursive: true })
writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`)
process.stdout.write(`${renderTable(results)}\n\nResults: ${opts.out} (${results.elapsed_s} s)\n`)
process.exit(failures.length > 0 ? 1 : 0)
