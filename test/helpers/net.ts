import { connect, createServer } from 'node:net'

/** A port free on 127.0.0.1 right now (for servers that must be restarted on the same port). */
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

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** Polls until `port` accepts connections; `dead()` returning a message aborts (the server died). */
export async function waitListening(
  port: number,
  timeoutMs: number,
  dead: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const why = dead()
    if (why !== undefined) throw new Error(why)
    if (await canConnect(port)) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`)
}
