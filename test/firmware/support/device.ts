/**
 * Runs firmware/host/device/hypertcp_device and speaks its line protocol
 * (documented at the top of that file): events come one per line on stdout,
 * commands go one per line on stdin.
 *
 * waitFor() never sleeps: it resolves on the first unconsumed line that
 * matches, whenever it arrived (before or after the call), and consumes it,
 * so each line satisfies one wait at most and the order in which two
 * instances report does not matter.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { Inbox } from '../../helpers/inbox.js'

export interface DeviceOptions {
  /** One instance per entry: `host:port:token[:deviceId]`. */
  connect: string[]
  keepalive?: number
  heartbeatTimeout?: number
  loginTimeout?: number
  connectTimeout?: number
  backoff?: [number, number]
  /** Log in with the blocking connect() (prints CONNECT_RESULT). */
  blocking?: boolean
  env?: Record<string, string>
}

export class DeviceProcess {
  /** Output lines; failures quote the last ones and the device's stderr. */
  readonly lines: Inbox<string>
  private stderr = ''
  private partial = ''
  private exitInfo: string | undefined
  private readonly exited: Promise<void>

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = new Inbox('device output', () =>
      this.stderr ? `\nstderr:\n${this.stderr.slice(-3000)}` : '',
    )
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (d: string) => this.onData(d))
    child.stderr.on('data', (d: string) => {
      this.stderr += d
    })
    // A device that stopped reading its stdin is gone; nothing to report.
    child.stdin.on('error', () => {})
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exitInfo = `exited (code ${code}, signal ${signal})`
        this.lines.close(`device ${this.exitInfo}`)
        resolve()
      })
    })
  }

  static start(binary: string, options: DeviceOptions): DeviceProcess {
    const args: string[] = []
    for (const c of options.connect) args.push('--connect', c)
    if (options.keepalive !== undefined) args.push('--keepalive', String(options.keepalive))
    if (options.heartbeatTimeout !== undefined)
      args.push('--heartbeat-timeout', String(options.heartbeatTimeout))
    if (options.loginTimeout !== undefined) args.push('--login-timeout', String(options.loginTimeout))
    if (options.connectTimeout !== undefined) args.push('--connect-timeout', String(options.connectTimeout))
    if (options.backoff) args.push('--backoff', `${options.backoff[0]}:${options.backoff[1]}`)
    if (options.blocking) args.push('--blocking')
    return DeviceProcess.run(binary, args, options.env)
  }

  /** Runs any line-oriented program (e.g. the console example). */
  static run(binary: string, args: string[], env?: Record<string, string>): DeviceProcess {
    const child = spawn(binary, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // LeakSanitizer needs ptrace, which sandboxes may forbid; leaks are not what these tests look for.
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0', ...env },
    })
    return new DeviceProcess(child)
  }

  /** Sends one command line. */
  send(line: string): void {
    this.child.stdin.write(`${line}\n`)
  }

  /** Sends a command and waits for its answer. */
  command(line: string, answer: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const p = this.waitFor(answer, timeoutMs)
    this.send(line)
    return p
  }

  /** Resolves with the first unconsumed line matching `re` (and consumes it). */
  async waitFor(re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const line = await this.lines.take((l) => re.test(l), timeoutMs, String(re))
    return line.match(re)!
  }

  /** Lines so far matching `re`, consumed or not. */
  all(re: RegExp): RegExpMatchArray[] {
    return this.lines.history.map((l) => l.match(re)).filter((m): m is RegExpMatchArray => m !== null)
  }

  /** Ends the program (closing stdin ends it; SIGKILL if it lingers). */
  async stop(): Promise<void> {
    this.lines.close('device stopped')
    if (this.exitInfo) return
    this.child.stdin.end()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000)
    await this.exited
    clearTimeout(timer)
  }

  /** Waits for the program to end by itself; resolves with every line it printed. */
  async finish(): Promise<string[]> {
    await this.exited
    return [...this.lines.history]
  }

  /** True if the program is still running. */
  get running(): boolean {
    return this.exitInfo === undefined
  }

  private onData(d: string): void {
    this.partial += d
    let nl = this.partial.indexOf('\n')
    while (nl >= 0) {
      this.lines.push(this.partial.slice(0, nl))
      this.partial = this.partial.slice(nl + 1)
      nl = this.partial.indexOf('\n')
    }
  }
}
