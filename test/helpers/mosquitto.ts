import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Inbox } from './inbox.js'
import { freePort, waitListening } from './net.js'

/** Where Debian puts the broker and its clients; PATH first. */
function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/usr/local/sbin']) {
    const p = join(dir, name)
    if (dir && existsSync(p)) return p
  }
  return undefined
}

export const mosquittoBin = which('mosquitto')
export const mosquittoSub = which('mosquitto_sub')
export const mosquittoPub = which('mosquitto_pub')

/**
 * Skips the calling suite with a printed reason when Mosquitto is not installed — unless
 * HTGW_REQUIRE_TOOLS is set (CI sets it), where its absence fails the run instead.
 */
export function requireMosquitto(ctx: Mocha.Context, clients = false): void {
  const missing = !mosquittoBin
    ? 'mosquitto'
    : clients && (!mosquittoSub || !mosquittoPub)
      ? 'mosquitto-clients'
      : ''
  if (!missing) return
  const reason = `${missing} is not installed (apt-get install -y mosquitto mosquitto-clients)`
  if (process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${reason}`)
  console.warn(`      SKIPPED: ${ctx.test?.parent?.fullTitle() ?? 'suite'}: ${reason}`)
  ctx.skip()
}

/** A real Mosquitto broker on 127.0.0.1 and a free port, owned by the test that started it. */
export class Mosquitto {
  /**
   * What the broker logs, a line each (every run): e.g. `New client connected from … as <id> (p5,
   * c1, k30).` — protocol level, clean start and keepalive of each client.
   */
  readonly log = new Inbox<string>('mosquitto log')
  private child: ChildProcess | undefined
  private readonly dir: string
  readonly port: number

  private constructor(
    port: number,
    persistent: boolean,
    settings: Record<string, string | number | boolean>,
    acl: readonly string[] | undefined,
  ) {
    this.port = port
    this.dir = mkdtempSync(join(tmpdir(), 'htgw-mosquitto-'))
    // Started as root, mosquitto drops to its own user: it must be able to write its database here.
    chmodSync(this.dir, 0o777)
    if (acl !== undefined) {
      writeFileSync(join(this.dir, 'acl'), `${acl.join('\n')}\n`, { mode: 0o644 })
      settings = { ...settings, acl_file: join(this.dir, 'acl') }
    }
    // Persistent: sessions and queued messages are saved after every change, so they survive
    // even `kill -9` (what the fault tests need for a persistent subscriber).
    const persistence = persistent
      ? `persistence true\npersistence_location ${this.dir}/\nautosave_interval 1\nautosave_on_changes true\n`
      : 'persistence false\n'
    writeFileSync(
      join(this.dir, 'mosquitto.conf'),
      `listener ${port} 127.0.0.1\nallow_anonymous true\n${persistence}max_queued_messages 100000\nmax_inflight_messages 0\n` +
        Object.entries(settings)
          .map(([k, v]) => `${k} ${v}\n`)
          .join(''),
    )
  }

  /**
   * `settings`: further mosquitto.conf lines (later lines win over the defaults above); `acl`: the
   * lines of an `acl_file` (anonymous clients get its rules before any `user` line).
   */
  static async start(
    options: {
      persistent?: boolean
      settings?: Record<string, string | number | boolean>
      acl?: readonly string[]
    } = {},
  ): Promise<Mosquitto> {
    const m = new Mosquitto(
      await freePort(),
      options.persistent ?? false,
      options.settings ?? {},
      options.acl,
    )
    await m.run()
    return m
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`
  }

  /** (Re)starts the broker on the same port and waits until it accepts connections. */
  async run(): Promise<void> {
    if (!mosquittoBin) throw new Error('mosquitto is not installed')
    let output = ''
    const child = spawn(mosquittoBin, ['-c', join(this.dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let partial = ''
    const collect = (d: Buffer) => {
      output += d
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop()!
      for (const line of lines) this.log.push(line)
    }
    child.stdout?.on('data', collect)
    child.stderr?.on('data', collect)
    this.child = child
    await waitListening(this.port, 10_000, () =>
      child.exitCode !== null ? `mosquitto exited (${child.exitCode}): ${output}` : undefined,
    )
  }

  /** The running broker process, if any. */
  get process(): ChildProcess | undefined {
    return this.child
  }

  get pid(): number {
    return this.child?.pid ?? 0
  }

  /**
   * Persistent mode: writes the broker's database now (SIGUSR1) and waits until it is on disk.
   * Its autosave only runs once changes *exceed* the interval, so a lone subscription made just
   * before a `kill -9` would otherwise be lost, and the messages meant for it with it.
   */
  async save(): Promise<void> {
    const db = join(this.dir, 'mosquitto.db')
    const before = existsSync(db) ? statSync(db).mtimeMs : 0
    this.child?.kill('SIGUSR1')
    const deadline = Date.now() + 5000
    while (!existsSync(db) || statSync(db).mtimeMs === before) {
      if (Date.now() > deadline) throw new Error('mosquitto did not write its database')
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /**
   * Freezes the broker (SIGSTOP): its connections stay open, nothing is answered — a broker that
   * hangs. `thaw` (SIGCONT) lets it carry on.
   */
  freeze(): void {
    this.child?.kill('SIGSTOP')
  }

  thaw(): void {
    this.child?.kill('SIGCONT')
  }

  /** Stops the broker (SIGKILL by default: an outage, not a goodbye). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    this.child = undefined
    if (!child || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    if (signal !== 'SIGKILL') child.kill('SIGCONT') // a frozen broker acts on it once it runs
    await exited
  }

  async dispose(): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Runs `mosquitto_pub` once. */
export function mosquittoPublish(port: number, topic: string, message: string): void {
  execFileSync(mosquittoPub!, ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', topic, '-m', message])
}

/** The installed Mosquitto's version (`mosquitto -h` prints it and exits 3), if any. */
export function mosquittoVersion(): string | undefined {
  if (!mosquittoBin) return undefined
  try {
    execFileSync(mosquittoBin, ['-h'], { stdio: 'pipe' })
  } catch (err) {
    return /mosquitto version (\S+)/.exec(String((err as { stdout?: Buffer }).stdout ?? ''))?.[1]
  }
  return undefined
}
