import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** A real Mosquitto broker on 127.0.0.1 and a free port, owned by the test that started it. */
export class Mosquitto {
  private child: ChildProcess | undefined
  private readonly dir: string
  readonly port: number

  private constructor(port: number, persistent: boolean) {
    this.port = port
    this.dir = mkdtempSync(join(tmpdir(), 'htgw-mosquitto-'))
    // Started as root, mosquitto drops to its own user: it must be able to write its database here.
    chmodSync(this.dir, 0o777)
    // Persistent: sessions and queued messages are saved after every change, so they survive
    // even `kill -9` (what the fault tests need for a persistent subscriber).
    const persistence = persistent
      ? `persistence true\npersistence_location ${this.dir}/\nautosave_interval 1\nautosave_on_changes true\n`
      : 'persistence false\n'
    writeFileSync(
      join(this.dir, 'mosquitto.conf'),
      `listener ${port} 127.0.0.1\nallow_anonymous true\n${persistence}max_queued_messages 100000\nmax_inflight_messages 0\n`,
    )
  }

  static async start(options: { persistent?: boolean } = {}): Promise<Mosquitto> {
    const m = new Mosquitto(await freePort(), options.persistent ?? false)
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
    child.stdout?.on('data', (d) => (output += d))
    child.stderr?.on('data', (d) => (output += d))
    this.child = child
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${output}`)
      if (await canConnect(this.port)) return
      await new Promise((r) => setTimeout(r, 30))
    }
    child.kill('SIGKILL')
    throw new Error(`mosquitto did not listen on ${this.port} within 10 s: ${output}`)
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

  /** Stops the broker (SIGKILL by default: an outage, not a goodbye). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    this.child = undefined
    if (!child || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
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
