import { readFileSync } from 'node:fs'
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

/**
 * A port nothing listens on, below the kernel's range of source ports: dialed again and again, a
 * free port inside that range is now and then given to the attempt as its own source, and the
 * socket connects to itself (TCP simultaneous open) instead of being refused.
 */
export async function refusedPort(): Promise<number> {
  let low = 32768
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {
    // not Linux: its default range starts higher still
  }
  for (let port = low - 1; port > 1024; port--) {
    if (await listensFree(port)) return port
  }
  throw new Error(`no free port below ${low}`)
}

function listensFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
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
