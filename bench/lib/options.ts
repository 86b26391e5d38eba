import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { brokerAddress } from './mqtt-stream.js'

/** `external`: the broker given by `--broker-url` (the user's own). */
export type BrokerKind = 'embedded' | 'mosquitto' | 'external'
export type Scenario = 'uplink' | 'latency' | 'downlink' | 'scale'

/** Everything a benchmark run is parameterised by (recorded in the results). */
export interface BenchOptions {
  mode: 'quick' | 'full' | 'soak'
  out: string
  /** Directory of the built gateway (cli.js). */
  gateway: string
  build: boolean
  scenarios: Scenario[]
  brokers: BrokerKind[]
  /** `--broker-url`: the external broker (may carry credentials: record it only through redactUrl). */
  brokerUrl: string | undefined
  /** QoS levels of the uplink throughput comparison (latency and downlink use QoS 1). */
  qos: (0 | 1)[]
  /** Runs per figure; the median is reported. */
  runs: number
  warmupMs: number
  measureMs: number
  latencyMeasureMs: number
  /** Devices (and direct clients) in the throughput, latency and downlink runs. */
  devices: number
  /** Messages each device keeps unacknowledged in the closed loop. */
  window: number
  /** Generator processes per side (HyperTCP devices, direct MQTT clients). */
  procs: number
  /** Offered loads of the latency runs, msgs/s. */
  rates: number[]
  downlinkWindow: number
  /** Also run the raw (non-MQTT.js) direct baseline. */
  rawBaseline: boolean
  scaleDevices: number
  /**
   * Gateway workers of the scale run: 1 while one process's open-files limit holds the devices,
   * else enough to hold them (`--scale N`).
   */
  scaleWorkers: number
  /** Device generator processes of the scale run: at most 15,000 descriptors each. */
  scaleProcs: number
  scaleRuns: number
  /**
   * Logins in progress per generator in the scale ramps, the gateway's and the direct one alike: a
   * ramp, not a SYN flood — what is measured is how fast logins complete.
   */
  loginConcurrency: number
  /** How long the login ramp and the return after a restart may take before the run fails. */
  scaleRampS: number
  /** Soak: idle minutes and connect/disconnect cycles. */
  soakIdleMinutes: number
  soakCycles: number
  /** Extra node options for the gateway process (e.g. --cpu-prof). */
  gatewayNodeArgs: string[]
  /** Extra gateway CLI flags, `name=value`. */
  gatewayFlags: Record<string, string>
  /** Sides of the uplink comparison to run (profiling runs only the gateway side); `direct` also the downlink's. */
  sides: ('gateway' | 'direct' | 'raw')[]
  /**
   * Where to write profiles of the gateway: CPU during the measurement window of the first
   * gateway-side uplink run of each broker and QoS, allocations during the second (`--profile DIR`).
   */
  profileDir: string | undefined
}

const HELP = `npm run bench -- [--quick | --soak] [options]

  --quick               one short run of everything (< 1 minute); what the test suite runs
  --soak                idle RSS over 10 minutes and RSS across 1M connect/disconnect cycles
  --out FILE            results JSON (default bench/results/latest.json; soak.json for --soak)
  --gateway DIR         built gateway to run (default dist/, built first unless --no-build)
  --no-build            do not run npm run build first
  --only LIST           scenarios: uplink,latency,downlink,scale
  --brokers LIST        embedded,mosquitto (and external, with --broker-url)
  --broker-url URL      measure your own broker: mqtt://[user:password@]host[:port]; the gateway runs
                        with --mqtt-url (credentials through its config file), the direct clients,
                        publisher and subscriber connect to it; runs uplink and downlink (gateway
                        and direct side) unless --only says otherwise, as broker 'external' unless
                        --brokers says otherwise; recorded with its credentials redacted
  --runs N              runs per figure (median reported)
  --devices N           devices / direct clients in the message runs
  --scale N             the scale run alone with N devices, through as many gateway workers as
                        their descriptors need (N / (open-files limit less 300), rounded up); with
                        workers, against Mosquitto unless --brokers says otherwise
  --scale-devices N     devices in the scale run (default: the open-files limit less 300, the
                        gateway's default maxConnections)
  --scale-runs N        scale runs (a run that does not reach its device count is not repeated)
  --login-concurrency N logins in progress per generator in the scale ramps, gateway and direct
                        alike (default 200; Mosquitto listens with a backlog of 100, and more
                        handshakes in flight than that can overflow it: see listen_overflows)
  --soak-minutes N      measured idle phase of --soak, after 2 min of warm-up (default 10)
  --soak-cycles N       connect/disconnect cycles of --soak (default 1000000)
  --gateway-node-arg A  extra node option for the gateway process (repeatable), e.g. --cpu-prof
  --gateway-flag K=V    extra gateway CLI flag (repeatable), e.g. max-inflight=32
  --qos LIST            QoS levels of the uplink throughput runs (default 1,0)
  --sides LIST          gateway,direct,raw (default all; raw only in full mode): the uplink
                        comparison's sides; without direct, the downlink has no direct side either
  --profile DIR         gateway CPU profile during the first gateway-side uplink window per broker
                        and QoS, allocation profile during the second (use --runs 2 or more);
                        CPU profile during the first scale run's login ramp; summarise with bench/tools/profile-summary.ts
`

export function parseOptions(argv: string[], cwd: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      soak: { type: 'boolean' },
      out: { type: 'string' },
      gateway: { type: 'string' },
      'no-build': { type: 'boolean' },
      only: { type: 'string' },
      brokers: { type: 'string' },
      'broker-url': { type: 'string' },
      runs: { type: 'string' },
      devices: { type: 'string' },
      'scale-devices': { type: 'string' },
      scale: { type: 'string' },
      'scale-runs': { type: 'string' },
      'login-concurrency': { type: 'string' },
      'soak-minutes': { type: 'string' },
      'soak-cycles': { type: 'string' },
      'gateway-node-arg': { type: 'string', multiple: true },
      'gateway-flag': { type: 'string', multiple: true },
      qos: { type: 'string' },
      sides: { type: 'string' },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const quick = values.quick === true
  const int = (v: string | undefined, fallback: number) =>
    v === undefined ? fallback : Number.parseInt(v, 10)
  // One descriptor per device: the gateway holds at most its open-files limit less 300 connections
  // by default (maxConnections; the rest is its own: listeners, broker connection, files). The
  // scale run fills exactly that.
  const fdLimit = openFilesLimit()
  const opts: BenchOptions = {
    mode: values.soak ? 'soak' : quick ? 'quick' : 'full',
    out: resolve(cwd, values.out ?? (values.soak ? 'bench/results/soak.json' : 'bench/results/latest.json')),
    gateway: resolve(cwd, values.gateway ?? 'dist'),
    build: !values['no-build'] && values.gateway === undefined,
    scenarios: (values.only?.split(',') ??
      (values.scale !== undefined
        ? ['scale']
        : values['broker-url'] !== undefined
          ? ['uplink', 'downlink']
          : ['uplink', 'latency', 'downlink', 'scale'])) as Scenario[],
    brokers: (values.brokers?.split(',') ??
      (values['broker-url'] !== undefined ? ['external'] : ['embedded', 'mosquitto'])) as BrokerKind[],
    brokerUrl: values['broker-url'],
    qos: (values.qos?.split(',').map(Number) ?? [1, 0]) as (0 | 1)[],
    runs: int(values.runs, quick ? 1 : 3),
    warmupMs: quick ? 400 : 1000,
    measureMs: quick ? 1200 : 4000,
    latencyMeasureMs: quick ? 1200 : 8000,
    devices: int(values.devices, quick ? 50 : 100),
    window: 16,
    procs: quick ? 1 : 2,
    rates: [1000, 10_000],
    downlinkWindow: 4,
    rawBaseline: !quick,
    scaleDevices: int(values.scale ?? values['scale-devices'], quick ? 2000 : Math.max(1000, fdLimit - 300)),
    scaleWorkers: 1,
    scaleProcs: 0,
    scaleRuns: int(values['scale-runs'], quick ? 1 : 3),
    loginConcurrency: int(values['login-concurrency'], 200),
    scaleRampS: quick ? 30 : 60,
    soakIdleMinutes: int(values['soak-minutes'], 10),
    soakCycles: int(values['soak-cycles'], 1_000_000),
    gatewayNodeArgs: values['gateway-node-arg'] ?? [],
    gatewayFlags: Object.fromEntries(
      (values['gateway-flag'] ?? []).map((kv) => {
        const i = kv.indexOf('=')
        return [kv.slice(0, i), kv.slice(i + 1)]
      }),
    ),
    sides: (values.sides?.split(',') ?? ['gateway', 'direct', 'raw']) as BenchOptions['sides'],
    profileDir: values.profile === undefined ? undefined : resolve(cwd, values.profile),
  }
  opts.scaleProcs = Math.max(
    quick ? 1 : 2,
    Math.ceil(opts.scaleDevices / Math.min(15_000, Math.max(100, fdLimit - 300))),
  )
  opts.scaleWorkers = Math.max(1, Math.ceil(opts.scaleDevices / Math.max(100, fdLimit - 300)))
  if (values.scale !== undefined && values['scale-runs'] === undefined) opts.scaleRuns = 1
  // Workers against the embedded broker pay Aedes's scan of every retained message per subscription
  // (bench/README): past one process, --scale measures Mosquitto unless told otherwise.
  if (
    values.scale !== undefined &&
    values.brokers === undefined &&
    values['broker-url'] === undefined &&
    opts.scaleWorkers > 1
  )
    opts.brokers = ['mosquitto']
  for (const q of opts.qos)
    if (q !== 0 && q !== 1) throw new Error(`QoS ${q}: the benchmark runs QoS 0 and 1`)
  for (const s of opts.scenarios) {
    if (!['uplink', 'latency', 'downlink', 'scale'].includes(s)) throw new Error(`unknown scenario ${s}`)
  }
  for (const b of opts.brokers) {
    if (b !== 'embedded' && b !== 'mosquitto' && b !== 'external') throw new Error(`unknown broker ${b}`)
    if (b === 'external' && opts.brokerUrl === undefined)
      throw new Error('broker external needs --broker-url')
  }
  // Throws on anything the bare clients cannot connect to (they speak plain mqtt:// only).
  if (opts.brokerUrl !== undefined) brokerAddress(opts.brokerUrl)
  return opts
}

/** The soft open-files limit of this process (children inherit it), from /proc/self/limits. */
export function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'))
    if (m) return Number(m[1])
  } catch {
    // not Linux: a conservative guess
  }
  return 1024
}
