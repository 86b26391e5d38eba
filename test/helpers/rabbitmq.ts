import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { canConnect, freePort, waitListening } from './net.js'

/**
 * Debian's RabbitMQ tools. The /usr/sbin wrappers switch to the rabbitmq user and its cookie in
 * /var/lib/rabbitmq; these run as whoever calls them, with the HOME (and so the cookie) we give.
 */
const BIN = '/usr/lib/rabbitmq/bin'
export const rabbitmqServer = join(BIN, 'rabbitmq-server')
const rabbitmqctlBin = join(BIN, 'rabbitmqctl')

/** epmd ships with erlang-base; PATH first, then where Debian puts it. */
function epmdBin(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/lib/erlang/bin']) {
    const p = join(dir, 'epmd')
    if (dir && existsSync(p)) return p
  }
  return undefined
}

/**
 * Skips the calling suite with a printed reason when RabbitMQ is not installed — unless
 * HTGW_REQUIRE_TOOLS is set (CI sets it), where its absence fails the run instead.
 */
export function requireRabbitmq(ctx: Mocha.Context): void {
  if (existsSync(rabbitmqServer) && epmdBin()) return
  const reason = `rabbitmq-server is not installed (apt-get install -y --no-install-recommends rabbitmq-server)`
  if (process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${reason}`)
  console.warn(`      SKIPPED: ${ctx.test?.parent?.fullTitle() ?? 'suite'}: ${reason}`)
  ctx.skip()
}

export interface RabbitClusterOptions {
  /** How many nodes (default 2); the first is the seed the others join. */
  size?: number
  /** For the whole start, boots and joins included (default 90 s: a cold start takes ~15-20 s). */
  timeoutMs?: number
  /** Further rabbitmq.conf lines for every node (later lines win over the defaults). */
  settings?: Record<string, string | number | boolean>
}

/** One node of a {@link RabbitCluster}, as tests see it. */
export interface RabbitNode {
  /** Erlang node name, e.g. `htgw1-1234-1@localhost` (what rabbitmqctl -n and cluster_status use). */
  readonly name: string
  readonly mqttPort: number
  readonly amqpPort: number
  /** `mqtt://127.0.0.1:<mqttPort>` */
  readonly mqttUrl: string
  /** The node's Erlang VM (beam.smp) — the process we spawned, not a shell around it. */
  readonly pid: number
  /** False once killed (or died). */
  readonly alive: boolean
  /** The tail of what the node printed (its log goes to stdout). */
  output(): string
}

/** Environment variables that tag every process of a cluster (and of a node), so that none escapes. */
const CLUSTER_TAG = 'HTGW_RABBITMQ_CLUSTER'
const NODE_TAG = 'HTGW_RABBITMQ_NODE'

/** Clusters not yet disposed: killed synchronously if mocha exits without disposing them. */
const undisposed = new Set<RabbitCluster>()
let exitHooksInstalled = false

let clusters = 0

/**
 * Holds the event loop open until `work` settles. The cluster's processes and pipes are unref'd so
 * that they never keep mocha alive; but then, while the harness itself awaits one of them (a VM's
 * exit, a log line), nothing else may be keeping node running.
 */
async function keepAlive<T>(work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000)
  try {
    return await work()
  } finally {
    clearInterval(timer)
  }
}

class Node implements RabbitNode {
  child: ChildProcess | undefined
  private log = ''
  /** Output not yet ended by a newline: lines are counted whole, however the output is chunked. */
  private partial = ''
  /** How many times the node has printed `Server startup complete` (once per boot or start_app). */
  private startups = 0
  /** Resolves when the VM exits, however it does. */
  exited: Promise<void> = Promise.resolve()

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
    readonly mqttPort: number,
    readonly amqpPort: number,
  ) {}

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.mqttPort}`
  }

  get pid(): number {
    return this.child?.pid ?? 0
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  output(): string {
    return this.log
  }

  /** Keeps the last 64 KB: enough to see why a boot failed, bounded however chatty the node is. */
  append(chunk: Buffer | string): void {
    const text = chunk.toString()
    this.log += text
    if (this.log.length > 65536) this.log = this.log.slice(-65536)
    const lines = (this.partial + text).split('\n')
    this.partial = lines.pop()!
    for (const line of lines) if (line.includes('Server startup complete')) this.startups++
  }

  /**
   * For error messages: the node's first error lines, which say why (a boot failure ends in a long
   * crash report that does not), then its last `lines` lines.
   */
  tail(lines = 40): string {
    const all = this.log.trimEnd().split('\n')
    const last = all.slice(-lines)
    const first = all
      .slice(0, -lines)
      .filter((l) => l.includes('[error]'))
      .slice(0, 10)
    const why = first.length > 0 ? `\n--- ${this.name} (first errors) ---\n${first.join('\n')}` : ''
    return `${why}\n--- ${this.name} (last ${lines} lines) ---\n${last.join('\n') || '(no output)'}`
  }

  /** Why the node can no longer come up, or undefined while it still can. */
  dead(): string | undefined {
    const c = this.child
    if (!c || c.exitCode !== null || c.signalCode !== null)
      return `${this.name} exited (${c?.exitCode ?? c?.signalCode ?? 'not started'})`
    return undefined
  }

  /** Starts the Erlang VM and resolves once it has spawned; boot goes on in the background. */
  spawn(): Promise<void> {
    // RABBITMQ_ALLOW_INPUT makes the script exec the VM instead of running it under a shell that
    // traps signals: the child *is* beam.smp, so its pid is the one to SIGKILL, and its exit event
    // is the VM's death. `-noinput` (in RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS) keeps the shell off.
    const child = spawn(rabbitmqServer, [], {
      cwd: this.dir,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    this.child = child
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve())
      child.once('error', () => resolve())
    })
    child.stdout?.on('data', (d) => this.append(d))
    child.stderr?.on('data', (d) => this.append(d))
    // Neither the VM nor its pipes keep mocha alive; dispose() (or the exit hook) ends them.
    child.unref()
    ;(child.stdout as Readable & { unref?: () => void }).unref?.()
    ;(child.stderr as Readable & { unref?: () => void }).unref?.()
    return new Promise((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
  }

  /**
   * Resolves when the node has printed `Server startup complete` `count` times (once per boot or
   * start_app): the moment rabbitmqctl await_startup would succeed, seen without polling it (which,
   * while a node boots, re-checks only every 10 s).
   */
  startupComplete(count: number, timeoutMs: number): Promise<void> {
    const done = () => this.startups >= count
    return new Promise((resolve, reject) => {
      const child = this.child!
      const finish = (err?: Error) => {
        clearTimeout(timer)
        child.stdout?.off('data', check)
        child.off('exit', onExit)
        err ? reject(err) : resolve()
      }
      const check = () => {
        if (done()) finish()
      }
      const onExit = () => finish(new Error(`${this.dead()} while booting`))
      const timer = setTimeout(
        () => finish(new Error(`${this.name} did not finish booting within ${timeoutMs} ms`)),
        timeoutMs,
      )
      // After the harness's own listener (registered in spawn), so the chunk is already appended.
      child.stdout?.on('data', check)
      child.once('exit', onExit)
      if (this.dead()) onExit()
      else check()
    })
  }
}

/**
 * A real RabbitMQ 3.10 cluster (two nodes by default) with the MQTT plugin, on loopback and free
 * ports, with fresh data directories and a private epmd: it shares nothing with a system RabbitMQ.
 */
export class RabbitCluster {
  readonly nodes: readonly RabbitNode[]
  private readonly members: Node[]
  private epmd: ChildProcess | undefined
  private disposed = false

  private constructor(
    private readonly root: string,
    private readonly epmdPort: number,
    members: Node[],
  ) {
    this.members = members
    this.nodes = members
  }

  /** Boots every node, joins them to the first, and resolves once all are running, clustered, with MQTT open. */
  static start(options: RabbitClusterOptions = {}): Promise<RabbitCluster> {
    return keepAlive(() => RabbitCluster.startCluster(options))
  }

  private static async startCluster(options: RabbitClusterOptions): Promise<RabbitCluster> {
    const size = options.size ?? 2
    if (!Number.isInteger(size) || size < 1) throw new Error(`a cluster needs at least one node, not ${size}`)
    const timeoutMs = options.timeoutMs ?? 90_000
    const started = Date.now()
    const deadline = started + timeoutMs
    const left = () => Math.max(1, deadline - Date.now())
    if (!existsSync(rabbitmqServer))
      throw new Error(`${rabbitmqServer} not found (apt-get install rabbitmq-server)`)
    const epmd = epmdBin()
    if (!epmd) throw new Error('epmd not found (it comes with erlang-base)')

    const seq = ++clusters
    const root = mkdtempSync(join(tmpdir(), 'htgw-rabbitmq-'))
    const home = join(root, 'home')
    mkdirSync(home)
    // One cookie for the nodes and the CLI; Erlang refuses a cookie file others can read.
    writeFileSync(join(home, '.erlang.cookie'), randomBytes(20).toString('hex'), { mode: 0o400 })

    // freePort can hand out a port twice once it is closed again: keep this cluster's ports distinct.
    const taken = new Set<number>()
    const port = async (): Promise<number> => {
      for (;;) {
        const p = await freePort()
        if (!taken.has(p)) {
          taken.add(p)
          return p
        }
      }
    }
    const epmdPort = await port()
    const base: NodeJS.ProcessEnv = { [CLUSTER_TAG]: root }
    // Only our own variables: an inherited RABBITMQ_* or ERL_* setting would change what we start.
    for (const [k, v] of Object.entries(process.env))
      if (!/^(RABBITMQ_|ERL_)/.test(k) && k !== CLUSTER_TAG && k !== NODE_TAG) base[k] = v
    Object.assign(base, {
      HOME: home,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      // A private epmd on loopback: a system one (Debian starts one for its rabbitmq) is left alone.
      ERL_EPMD_PORT: String(epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_CRASH_DUMP_SECONDS: '0',
      // CLI tools listen for their node's reply; on loopback too (they pick from 35672-35682).
      RABBITMQ_CTL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    })

    const members: Node[] = []
    for (let i = 0; i < size; i++) {
      const dir = join(root, `n${i + 1}`)
      mkdirSync(dir)
      const [amqpPort, mqttPort, distPort] = [await port(), await port(), await port()]
      // Short names on `localhost`: it resolves everywhere, unlike whatever the machine is called.
      const name = `htgw${i + 1}-${process.pid}-${seq}@localhost`
      const settings: Record<string, string | number | boolean> = {
        'listeners.tcp.1': `127.0.0.1:${amqpPort}`,
        'mqtt.listeners.tcp.1': `127.0.0.1:${mqttPort}`,
        'mqtt.allow_anonymous': true,
        'mqtt.default_user': 'guest',
        'mqtt.default_pass': 'guest',
        'mqtt.vhost': '/',
        'mqtt.exchange': 'amq.topic',
        ...options.settings,
      }
      writeFileSync(
        join(dir, 'rabbitmq.conf'),
        Object.entries(settings)
          .map(([k, v]) => `${k} = ${v}\n`)
          .join(''),
      )
      // The seed boots with MQTT; the others without, and get it once they have joined (see below).
      writeFileSync(join(dir, 'enabled_plugins'), i === 0 ? '[rabbitmq_mqtt].\n' : '[].\n')
      const env: NodeJS.ProcessEnv = {
        ...base,
        [NODE_TAG]: dir,
        RABBITMQ_NODENAME: name,
        RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(dir, 'log'),
        RABBITMQ_LOGS: '-',
        RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
        RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
        // Neither exists: /etc/rabbitmq's files would otherwise be read.
        RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
        RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
        // Else the AMQP port + 20000, which nobody checked was free.
        RABBITMQ_DIST_PORT: String(distPort),
        RABBITMQ_ALLOW_INPUT: 'true',
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-noinput -kernel inet_dist_use_interface {127,0,0,1}',
      }
      members.push(new Node(name, dir, env, mqttPort, amqpPort))
    }

    const cluster = new RabbitCluster(root, epmdPort, members)
    undisposed.add(cluster)
    if (!exitHooksInstalled) {
      exitHooksInstalled = true
      // The VMs run in their own process groups (a terminal's Ctrl-C does not reach them), and
      // nothing ties their life to ours: if mocha ends before dispose() — a failing hook, an
      // interrupt, a CI timeout's SIGTERM — they would run on.
      const killAll = () => {
        for (const c of undisposed) {
          c.killAllSync()
          rmSync(c.root, { recursive: true, force: true })
        }
        undisposed.clear()
      }
      process.once('exit', killAll)
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
        process.once(sig, () => {
          killAll()
          // Listening replaced the signal's default, ending the process: unless someone else
          // handles it, raise it again now that we no longer listen.
          if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
        })
      }
    }
    try {
      await cluster.boot(epmd, base, left)
    } catch (err) {
      const tails = members.map((n) => n.tail()).join('')
      await cluster.dispose()
      throw new Error(`rabbitmq cluster did not start: ${(err as Error).message}${tails}`, { cause: err })
    }
    console.log(
      `      rabbitmq cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (${size} nodes)`,
    )
    return cluster
  }

  private async boot(epmd: string, env: NodeJS.ProcessEnv, left: () => number): Promise<void> {
    // Started first and in the foreground, as our child: a VM finding no epmd would start a
    // daemonized one that outlives everything.
    let epmdOutput = ''
    const e = spawn(epmd, ['-port', String(this.epmdPort), '-address', '127.0.0.1'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    this.epmd = e
    e.stdout?.on('data', (d) => (epmdOutput += d))
    e.stderr?.on('data', (d) => (epmdOutput += d))
    e.unref()
    ;(e.stdout as Readable & { unref?: () => void }).unref?.()
    ;(e.stderr as Readable & { unref?: () => void }).unref?.()
    await waitListening(this.epmdPort, Math.min(10_000, left()), () =>
      e.exitCode !== null ? `epmd exited (${e.exitCode}): ${epmdOutput}` : undefined,
    )

    const [seed, ...joiners] = this.members
    // All boot at once (the seed's MQTT plugin alone waits 3-6 s for peers before electing itself).
    await Promise.all(this.members.map((n) => n.spawn()))
    await Promise.all(
      this.members.map(async (n) => {
        await n.startupComplete(1, left())
        await waitListening(n.amqpPort, left(), () => n.dead())
      }),
    )
    await waitListening(seed!.mqttPort, left(), () => seed!.dead())

    // One at a time: each joins the cluster (and its MQTT client-id tracker, a Raft group) as it stands.
    for (const n of joiners) {
      await this.ctl(n, ['stop_app'], left(), false)
      await this.ctl(n, ['join_cluster', seed!.name], left(), false)
      // The MQTT plugin is enabled only now, after the join. Booted alone, it would have formed a
      // one-member Raft group for client-id tracking, whose leftovers then compete with the
      // seed's; joining first, it finds its peers and joins their group. start_app reads this file.
      writeFileSync(n.env.RABBITMQ_ENABLED_PLUGINS_FILE!, '[rabbitmq_mqtt].\n')
      await this.ctl(n, ['start_app'], left(), false)
      await n.startupComplete(2, left())
      await waitListening(n.mqttPort, left(), () => n.dead())
    }

    for (const n of this.members) await this.ctl(n, ['await_startup'], left(), false)
    const status = JSON.parse(
      await this.ctl(seed!, ['cluster_status', '--formatter', 'json'], left(), false),
    ) as {
      running_nodes?: string[]
    }
    const missing = this.members.filter((n) => !status.running_nodes?.includes(n.name))
    if (missing.length > 0)
      throw new Error(
        `cluster_status on ${seed!.name} does not list ${missing.map((n) => n.name).join(', ')} as running: ${JSON.stringify(status.running_nodes)}`,
      )
  }

  /**
   * Runs `rabbitmqctl -n <node> ...args` against node `index` and returns its stdout (e.g.
   * `list_mqtt_connections`, `cluster_status --formatter json`); fails with its output and the node's.
   */
  rabbitmqctl(index: number, args: string[], timeoutMs = 30_000): Promise<string> {
    return keepAlive(() => this.ctl(this.member(index), args, timeoutMs, true))
  }

  /**
   * Runs a shell script that manages node `index` (deploy/rabbitmq/permissions.sh) with
   * `RABBITMQCTL` set to this node's rabbitmqctl and `env` added; resolves with its stdout.
   */
  script(index: number, path: string, env: NodeJS.ProcessEnv): Promise<string> {
    const node = this.member(index)
    return keepAlive(
      () =>
        new Promise((resolve, reject) => {
          execFile(
            'sh',
            [path],
            {
              env: { ...node.env, ...env, RABBITMQCTL: `${rabbitmqctlBin} -n ${node.name}` },
              timeout: 120_000,
            },
            (err, stdout, stderr) =>
              err ? reject(new Error(`${path} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
          )
        }),
    )
  }

  /** `withTail`: add the node's output to a failure (start() adds every node's itself). */
  private ctl(node: Node, args: string[], timeoutMs: number, withTail: boolean): Promise<string> {
    const what = `rabbitmqctl -n ${node.name} ${args.join(' ')}`
    return new Promise((resolve, reject) => {
      let stdout = ''
      let stderr = ''
      // Its own process group, so that a hung call can be ended whole.
      const child = spawn(rabbitmqctlBin, ['-n', node.name, ...args], {
        env: node.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
      child.stdout?.on('data', (d) => (stdout += d))
      child.stderr?.on('data', (d) => (stderr += d))
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {
          /* already gone */
        }
      }, timeoutMs)
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        if (code === 0) resolve(stdout)
        else
          reject(
            new Error(
              `${what} failed (${signal ? `killed after ${timeoutMs} ms` : `exit ${code}`}):\n${stdout}${stderr}${withTail ? node.tail() : ''}`,
            ),
          )
      })
    })
  }

  private member(index: number): Node {
    const n = this.members[index]
    if (!n) throw new Error(`no node ${index} (the cluster has ${this.members.length})`)
    return n
  }

  /**
   * SIGKILLs node `index`'s Erlang VM (an outage, not a shutdown: no goodbye to its peers or
   * clients), then its helpers, and resolves once its MQTT port refuses connections.
   */
  kill(index: number): Promise<void> {
    return keepAlive(() => this.killNode(this.member(index)))
  }

  private async killNode(n: Node): Promise<void> {
    if (n.alive) {
      process.kill(n.pid, 'SIGKILL')
      await n.exited
    }
    // erl_child_setup and inet_gethost run in their own sessions: without the VM they exit on
    // their own, but not at once; do not leave it to them.
    await killTagged(NODE_TAG, n.dir)
    const deadline = Date.now() + 5000
    while (await canConnect(n.mqttPort)) {
      if (Date.now() > deadline)
        throw new Error(`${n.name} was killed but 127.0.0.1:${n.mqttPort} still accepts`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** Stops every process of the cluster (VMs, their helpers, CLI calls, epmd) and removes its files. */
  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    this.killAllSync()
    await keepAlive(async () => {
      await Promise.all(this.members.map((n) => n.exited))
      await killTagged(CLUSTER_TAG, this.root)
    })
    undisposed.delete(this)
    rmSync(this.root, { recursive: true, force: true })
  }

  /** SIGKILLs everything at once, synchronously: also what runs if mocha exits without dispose(). */
  private killAllSync(): void {
    for (const n of this.members) if (n.alive) n.child!.kill('SIGKILL')
    if (this.epmd && this.epmd.exitCode === null) this.epmd.kill('SIGKILL')
    for (const pid of tagged(CLUSTER_TAG, this.root)) signal(pid)
  }
}

function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    /* already gone */
  }
}

/**
 * Live processes whose environment carries `tag=value`. Every process of a cluster inherits its tag,
 * even those that leave our process tree (inet_gethost reparents to init once its VM is gone, a
 * daemonized epmd does so at once): this finds them all, where following parent pids would not.
 */
function tagged(tag: string, value: string): number[] {
  const wanted = `${tag}=${value}\0`
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    try {
      if (!`${readFileSync(`/proc/${pid}/environ`, 'latin1')}\0`.includes(wanted)) continue
      // A zombie is dead already: only its parent's wait (init's, for orphans) removes it.
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue
      found.push(pid)
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found
}

/** SIGKILLs the tagged processes and waits until none is left. */
async function killTagged(tag: string, value: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const pids = tagged(tag, value)
    if (pids.length === 0) return
    if (Date.now() > deadline)
      throw new Error(`processes ${pids.join(', ')} (${tag}=${value}) survive SIGKILL`)
    for (const pid of pids) signal(pid)
    await new Promise((r) => setTimeout(r, 20))
  }
}
