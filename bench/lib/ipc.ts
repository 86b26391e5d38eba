import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { track } from './procs.js'

/**
 * Request/response over the IPC channel of a forked worker. Only control traffic travels here
 * (start, stop, counters, histograms): the load itself never crosses a process boundary in JS.
 *
 * A worker describes its commands as `{ name: [Args, Result] }`; both ends are typed by it.
 */
export type Commands = Record<string, [unknown, unknown]>

type Request = { id: number; cmd: string; args: unknown }
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string }

/** Worker side: answers requests with `handlers`; exits when the parent goes away. */
export function serve<C extends Commands>(
  handlers: {
    [K in keyof C]: (args: C[K][0]) => C[K][1] | Promise<C[K][1]>
  },
): void {
  if (!process.send) throw new Error('a benchmark worker must be started by bench/run.ts (fork)')
  process.on('disconnect', () => process.exit(0))
  process.on('message', (msg: Request) => {
    const handler = (handlers as Record<string, (args: unknown) => unknown>)[msg.cmd]
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown command ${msg.cmd}`)
        return handler(msg.args)
      })
      .then(
        (result) => process.send!({ id: msg.id, ok: true, result } satisfies Reply),
        (err: unknown) =>
          process.send!({
            id: msg.id,
            ok: false,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          } satisfies Reply),
      )
  })
}

/** Parent side: a forked worker process running a module of bench/gen. */
export class Worker<C extends Commands> {
  readonly name: string
  readonly child: ChildProcess
  private nextId = 0
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private exitError: Error | undefined

  private constructor(name: string, child: ChildProcess) {
    this.name = name
    this.child = child
    child.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id)
      if (!w) return
      this.waiting.delete(reply.id)
      if (reply.ok) w.resolve(reply.result)
      else w.reject(new Error(`${name}: ${reply.error}`))
    })
    child.on('exit', (code, signal) => {
      this.exitError = new Error(`${name} exited (code ${code}, signal ${signal})`)
      for (const w of this.waiting.values()) w.reject(this.exitError)
      this.waiting.clear()
    })
  }

  /** Forks `module` (a URL relative to bench/lib, e.g. `../gen/devices.ts`) under tsx. */
  static start<C extends Commands>(name: string, module: URL, execArgv: string[] = []): Worker<C> {
    const child = fork(fileURLToPath(module), [name], {
      execArgv: ['--import', 'tsx', ...execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    track(child)
    return new Worker<C>(name, child)
  }

  get pid(): number {
    return this.child.pid ?? 0
  }

  call<K extends keyof C & string>(cmd: K, args: C[K][0]): Promise<C[K][1]> {
    if (this.exitError) return Promise.reject(this.exitError)
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, cmd, args } satisfies Request)
    })
  }

  /** Ends the worker (it exits when its IPC channel closes) and waits for it. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }
}
