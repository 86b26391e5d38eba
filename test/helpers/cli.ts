import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Inbox } from './inbox.js'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const bin = `${root}bin/hypertcp-gateway.js`
const deviceBin = `${root}bin/hypertcp-device.js`

/** The CLI runs the compiled dist/ (npm test builds it first). */
export function requireBuild(): void {
  if (!existsSync(`${root}dist/cli.js`))
    throw new Error('dist/cli.js is missing: run `npm run build` (npm test does)')
}

/** Runs the CLI to completion. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: root,
    env: { HYPERTCP_DATA_DIR: 'off', ...process.env, ...env },
    encoding: 'utf8',
    timeout: 15_000,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A running CLI whose output lines can be awaited. */
export class CliProcess {
  readonly lines = new Inbox<string>('process output')
  readonly exited: Promise<number | null>
  private constructor(readonly child: ChildProcess) {
    let buf = ''
    const onData = (d: Buffer) => {
      buf += d.toString()
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        this.lines.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        nl = buf.indexOf('\n')
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.lines.close(`process exited (${code})`)
        resolve(code)
      }),
    )
  }

  /** `wrapper` runs the gateway through another command (e.g. `prlimit --nofile=40:40`). */
  static start(args: string[], env: NodeJS.ProcessEnv = {}, wrapper: string[] = []): CliProcess {
    const [command, ...prefix] = [...wrapper, process.execPath]
    return new CliProcess(
      spawn(command!, [...prefix, bin, ...args], {
        cwd: root,
        // The admin listener on any free port unless a test says otherwise: gateways of several
        // tests (or one restarted at once) must not fight for 8090.
        // The downlink store in memory unless a test gives a directory: the repository's ./data
        // is not the tests' to share.
        env: { HYPERTCP_ADMIN_PORT: '0', HYPERTCP_DATA_DIR: 'off', ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    )
  }

  /** The console device (`hypertcp-device`), with its stdin open for {@link type}. */
  static device(args: string[]): CliProcess {
    return new CliProcess(
      spawn(process.execPath, [deviceBin, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }),
    )
  }

  /** Types a line on the process's stdin. */
  type(line: string): void {
    this.child.stdin?.write(`${line}\n`)
  }

  /**
   * The CLI in standalone mode on 127.0.0.1 and free ports (HyperTCP, embedded MQTT, and MQTT over
   * WebSocket when `ws`), with the ports read from its listener log lines.
   */
  static async standalone(
    args: string[],
    options: { ws?: boolean; wrapper?: string[] } = {},
  ): Promise<{ gw: CliProcess; port: number; mqttPort: number; wsPort: number | undefined }> {
    const gw = CliProcess.start(
      [
        ...args,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--broker-host',
        '127.0.0.1',
        '--broker-port',
        '0',
        '--broker-ws-port',
        options.ws ? '0' : 'off',
        '--log-level',
        'info',
      ],
      {},
      options.wrapper,
    )
    const mqttPort = Number((await gw.match(/embedded MQTT broker listening on 127\.0\.0\.1:(\d+)/))[1])
    const wsPort = options.ws
      ? Number((await gw.match(/MQTT-over-WebSocket listening on 127\.0\.0\.1:(\d+)/))[1])
      : undefined
    const port = Number((await gw.match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/))[1])
    return { gw, port, mqttPort, wsPort }
  }

  /** Waits for a line matching `re` and returns its match. */
  async match(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const line = await this.lines.take((l) => re.test(l), timeoutMs, `line matching ${re}`)
    return line.match(re)!
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal)
  }
}
