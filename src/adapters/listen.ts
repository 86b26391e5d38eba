import type { Server as HttpServer } from 'node:http'
import type { Server } from 'node:net'
import { GatewayError } from '../errors.js'

const HINTS: Record<string, string> = {
  EADDRINUSE: 'the port is already in use (another gateway or broker running?)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
}

/**
 * Pending connections the kernel may queue before accept (capped by net.core.somaxconn). Node's
 * default, 511, drops SYNs when thousands of devices reconnect at once after a restart, and a
 * dropped SYN is retried by the device's kernel only after 1, 2, 4 … s.
 */
const BACKLOG = 8192

/** `server.listen`, with an error that says what and where when it fails. */
export function listenOn(
  server: Server | HttpServer,
  host: string,
  port: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint = HINTS[err.code ?? ''] ?? err.message
      reject(
        new GatewayError('HT_ERR_LISTEN', `${what} cannot listen on ${host}:${port}: ${hint} (${err.code})`, {
          cause: err,
        }),
      )
    }
    server.once('error', onError)
    server.listen({ port, host, backlog: BACKLOG }, () => {
      server.removeListener('error', onError)
      resolve()
    })
  })
}

/** `host:port`, with IPv6 hosts bracketed. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
