import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { waitListening } from '../../test/helpers/net.js'
import { type BrokerAddress, brokerAddress, withoutCredentials } from './mqtt-stream.js'
import { openFilesLimit } from './options.js'
import { type ProcSample, sampleTree, track } from './procs.js'

/** Registry entries of the generated config: device `d<i>` logs in with token `bench-token-<i>`. */
export function deviceId(i: number): string {
  return `d${i}`
}

export function deviceToken(i: number): string {
  return `bench-token-${i}`
}

/**
 * Loaded into the gateway process with `--import data:…` (before dist/cli.js). Over the IPC channel
 * it answers the orchestrator's memory requests (after a full GC when asked, so heap figures are
 * what is retained, not garbage awaiting collection) and starts/stops profiling through the
 * inspector, so a profile covers exactly a measurement window: CPU (Profiler) and allocation
 * sampling (HeapProfiler, including objects already collected — `--heap-prof` keeps only the live
 * ones, which hides per-message garbage). It exits with the orchestrator.
 *
 * Plain JavaScript inlined here so the measured process carries no TypeScript loader: tsx would add
 * a loader thread and its memory to the very process whose RSS is being divided by devices.
 */
const PROBE = `
import { Session } from 'node:inspector'
import { writeFileSync } from 'node:fs'
let session
let kind
const post = (method, params) => new Promise((resolve, reject) =>
  session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))))
async function handle(m) {
  switch (m.cmd) {
    case 'mem':
      if (m.gc && typeof globalThis.gc === 'function') { globalThis.gc(); globalThis.gc() }
      return process.memoryUsage()
    case 'profStart':
      session = new Session()
      session.connect()
      kind = m.kind
      if (kind === 'cpu') {
        await post('Profiler.enable')
        await post('Profiler.setSamplingInterval', { interval: 250 })
        await post('Profiler.start')
      } else {
        await post('HeapProfiler.enable')
        await post('HeapProfiler.startSampling', {
          samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: kind !== 'promoted',
        })
      }
      return null
    case 'profStop': {
      if (kind === 'cpu') {
        const { profile } = await post('Profiler.stop')
        writeFileSync(m.path, JSON.stringify(profile))
      } else {
        const { profile } = await post('HeapProfiler.stopSampling')
        writeFileSync(m.path, JSON.stringify(profile))
      }
      session.disconnect()
      return null
    }
  }
}
if (process.send) {
  process.on('message', (m) => {
    if (!m || typeof m.cmd !== 'string') return
    handle(m).then((result) => process.send({ id: m.id, result }), (err) => process.send({ id: m.id, error: String(err) }))
  })
  process.on('disconnect', () => process.exit(0))
}
`

interface ProbeReply {
  id: number
  result?: unknown
  error?: string
}

export interface GatewaySpec {
  /** Directory holding the built gateway (cli.js). */
  readonly dist: string
  /**
   * External broker URL, credentials in it if it needs them (they go to the gateway through its
   * config file, never on its command line); absent: the embedded Aedes broker on `brokerPort`.
   */
  readonly mqttUrl?: string
  readonly port: number
  readonly brokerPort: number
  /** Registry size (devices d0 … d<n-1>). */
  readonly devices: number
  /** `qos.up` of the gateway config. */
  readonly qosUp: 0 | 1
  /** Further CLI flags, e.g. `{ 'max-pending-publishes': '50000' }` (recorded in the results). */
  readonly flags: Readonly<Record<string, string>>
  /** Extra node options, e.g. `--cpu-prof`. */
  readonly nodeArgs?: readonly string[]
  /** How long it may take to listen (ms; default 20 s): workers holding 100,000 devices need more. */
  readonly startTimeoutMs?: number
}

/**
 * The embedded broker's user for the direct clients and the subscriber (a plain password: a hash
 * would add its scrypt cost to every direct login of the scale ramps).
 */
const BENCH_BROKER_USER = { username: 'bench', password: 'bench-direct-clients' } as const

/** The gateway under test, in its own process, started from the built CLI. */
export class GatewayProc {
  readonly spec: GatewaySpec
  readonly child: ChildProcess
  /** Lines the gateway printed (warnings and errors at the benchmark's log level). */
  readonly output: string[] = []
  private readonly dir: string
  private nextId = 0
  private readonly waiting = new Map<number, (reply: ProbeReply) => void>()

  private constructor(spec: GatewaySpec, child: ChildProcess, dir: string) {
    this.spec = spec
    this.child = child
    this.dir = dir
    const collect = (d: Buffer) => {
      for (const line of String(d).split('\n'))
        if (line.trim() && this.output.length < 1000) this.output.push(line)
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    child.on('message', (m: ProbeReply) => {
      this.waiting.get(m.id)?.(m)
      this.waiting.delete(m.id)
    })
  }

  static async start(spec: GatewaySpec): Promise<GatewayProc> {
    const cli = join(spec.dist, 'cli.js')
    if (!existsSync(cli)) throw new Error(`${cli} not found: run npm run build (or pass --gateway DIR)`)
    const dir = mkdtempSync(join(tmpdir(), 'htgw-bench-gw-'))
    const config = join(dir, 'gateway.json')
    const devices = Array.from({ length: spec.devices }, (_, i) => ({
      id: deviceId(i),
      token: deviceToken(i),
    }))
    const broker = spec.mqttUrl === undefined ? undefined : brokerAddress(spec.mqttUrl)
    const credentials = {
      ...(broker?.username !== undefined ? { mqttUsername: broker.username } : {}),
      ...(broker?.password !== undefined ? { mqttPassword: broker.password } : {}),
    }
    // Embedded: the direct clients publish where devices' messages go, which only gateways may.
    const users = broker === undefined ? { brokerUsers: [{ ...BENCH_BROKER_USER, role: 'gateway' }] } : {}
    writeFileSync(config, JSON.stringify({ qos: { up: spec.qosUp }, devices, ...credentials, ...users }), {
      mode: 0o600,
    })
    const args = [
      '--expose-gc',
      '--import',
      `data:text/javascript,${encodeURIComponent(PROBE)}`,
      ...(spec.nodeArgs ?? []),
      cli,
      '--config',
      config,
      // The downlink store in the run's own directory (removed with it), not the repository's ./data.
      '--data-dir',
      join(dir, 'data'),
      ...GatewayProc.flags(spec),
    ]
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    track(child)
    const gw = new GatewayProc(spec, child, dir)
    try {
      await waitListening(spec.port, spec.startTimeoutMs ?? 20_000, () =>
        child.exitCode !== null || child.signalCode !== null
          ? `gateway exited (${child.exitCode ?? child.signalCode}): ${gw.output.join('\n')}`
          : undefined,
      )
    } catch (err) {
      await gw.stop('SIGKILL')
      throw err
    }
    return gw
  }

  /** The CLI flags for `spec` (also recorded in the results: no credentials in them). */
  static flags(spec: GatewaySpec): string[] {
    const flags: Record<string, string> = {
      host: '127.0.0.1',
      port: String(spec.port),
      'log-level': 'warn',
      'gateway-id': 'bench',
      // Any free port: a gateway killed by a run may still hold the default for a moment.
      'admin-port': '0',
      // Devices here send as fast as they can, and log in again at every restart: those limits are off.
      'message-rate': '0',
      'broadcast-rate': '0',
      'login-flap-limit': '0',
      ...(spec.mqttUrl
        ? { 'mqtt-url': withoutCredentials(spec.mqttUrl) }
        : {
            'broker-host': '127.0.0.1',
            'broker-port': String(spec.brokerPort),
            'broker-ws-port': 'off',
            // The scale run's two sides come one after the other, each up to the open-files limit
            // less 300 (the default maxConnections without an embedded broker's share).
            'max-connections': String(Math.max(100, openFilesLimit() - 300)),
            'max-broker-connections': String(Math.max(100, openFilesLimit() - 300)),
          }),
      ...spec.flags,
    }
    return Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])
  }

  get pid(): number {
    return this.child.pid ?? 0
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** The broker devices' messages go to (the external one, or the embedded one): where direct clients connect. */
  get broker(): BrokerAddress {
    return this.spec.mqttUrl
      ? brokerAddress(this.spec.mqttUrl)
      : { host: '127.0.0.1', port: this.spec.brokerPort, ...BENCH_BROKER_USER }
  }

  /** The gateway's processes together (with `workers`: the primary and every worker). */
  sample(): ProcSample {
    return sampleTree(this.pid)
  }

  /** `process.memoryUsage()` of the gateway, after a full GC when `gc`. */
  memory(gc: boolean): Promise<NodeJS.MemoryUsage> {
    return this.probe('mem', { gc }) as Promise<NodeJS.MemoryUsage>
  }

  /**
   * Starts a CPU profile (sampling every 250 µs) or an allocation-sampling profile (every 16 KiB
   * allocated, collected objects included) in the gateway. `promoted` leaves out what the young
   * generation's collections free: what remains is what lived long enough to reach the old
   * generation — the garbage that only a full GC frees, and what is still live. One at a time:
   * together, the allocation sampler's stack walks would be most of what the CPU profile sees.
   */
  async profileStart(kind: 'cpu' | 'heap' | 'promoted'): Promise<void> {
    await this.probe('profStart', { kind })
  }

  /** Stops profiling and writes the profile to `path` (.cpuprofile / .heapprofile), making its directory. */
  async profileStop(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true })
    await this.probe('profStop', { path })
  }

  private probe(cmd: string, args: object): Promise<unknown> {
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway did not answer the ${cmd} probe`)), 30_000)
      this.waiting.set(id, (reply) => {
        clearTimeout(timer)
        if (reply.error !== undefined) reject(new Error(`gateway probe ${cmd}: ${reply.error}`))
        else resolve(reply.result)
      })
      this.child.send({ ...args, cmd, id })
    })
  }

  /**
   * SIGTERM: the gateway's clean shutdown (profiles passed with --cpu-prof are written on exit);
   * SIGKILL: a crash, for the restart measurement.
   */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    if (this.alive) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      this.child.kill(signal)
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}
