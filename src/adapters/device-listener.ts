import { readFileSync } from 'node:fs'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import {
  createServer as createTlsServer,
  type SecureContextOptions,
  type Server as TlsServer,
} from 'node:tls'
import { ConfigError } from '../errors.js'
import type { IpGuard } from '../limits/ip-guard.js'
import { TokenBucket } from '../limits/token-bucket.js'
import { type Logger, LogThrottle } from '../log.js'
import type { GatewayStats } from '../stats.js'
import { formatAddress, listenOn } from './listen.js'

export interface DeviceListenerOptions {
  /** The device protocol, in logs: `HyperTCP`, `Blynk`. */
  readonly name: string
  readonly host: string
  readonly port: number | 'off'
  readonly tlsPort: number | 'off'
  readonly tls: TlsFiles
  /** TLS handshakes must finish within this (slow handshakes are a cheap attack). */
  readonly handshakeTimeoutMs: number
  /** Connections per second, all addresses (0 = no limit). */
  readonly maxConnectionRate: number
  /** Connections beyond which new ones are closed at once (protects file descriptors). */
  readonly hardLimit: number
  readonly guard: IpGuard
  readonly stats: GatewayStats
  readonly logger: Logger
  /** Gets every admitted connection (TLS ones after their handshake). */
  readonly onConnection: (socket: Socket) => void
  /** Connections currently held (the gateway's count, for the hard limit). */
  readonly connections: () => number
}

export interface TlsFiles {
  readonly cert: string | null
  readonly key: string | null
  readonly ca: string | null
  readonly clientAuth: 'none' | 'request' | 'require'
}

/** Reads the PEM files of a TLS listener; errors name the setting. */
export function readTlsFiles(
  files: TlsFiles,
): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  const read = (key: string, path: string | null) => {
    if (path === null) return undefined
    try {
      return readFileSync(path)
    } catch (err) {
      throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  return {
    cert: read('tlsCert', files.cert),
    key: read('tlsKey', files.key),
    ca: read('tlsCa', files.ca),
    requestCert: files.clientAuth !== 'none',
    rejectUnauthorized: files.clientAuth === 'require',
  }
}

/**
 * The listeners of one device protocol: plain TCP and/or TLS. Every new connection is admitted or refused before
 * a byte is read from it: deny/allow lists, per-IP and global connection rates, and a hard limit
 * on connections held. A refused connection is destroyed at once and counted; floods are logged
 * a few lines at a time.
 */
export class DeviceListener {
  readonly addresses: { plain?: AddressInfo; tls?: AddressInfo } = {}
  private readonly servers: Server[] = []
  private tlsServer: TlsServer | undefined
  private readonly rate: TokenBucket | undefined
  private readonly throttle: LogThrottle

  constructor(private readonly options: DeviceListenerOptions) {
    this.rate =
      options.maxConnectionRate > 0
        ? new TokenBucket(options.maxConnectionRate, options.maxConnectionRate, Date.now())
        : undefined
    this.throttle = new LogThrottle(options.logger)
  }

  async listen(): Promise<void> {
    const { name, host, port, tlsPort, logger } = this.options
    if (port !== 'off') {
      const server = createServer((socket) => this.admit(socket))
      this.watch(server, name)
      await listenOn(server, host, port, `${name} listener`)
      this.addresses.plain = server.address() as AddressInfo
      logger.info(
        `${name} listening on ${formatAddress(this.addresses.plain.address, this.addresses.plain.port)}`,
      )
    }
    if (tlsPort !== 'off') {
      const server = createTlsServer({
        ...readTlsFiles(this.options.tls),
        handshakeTimeout: this.options.handshakeTimeoutMs,
      })
      // Admission runs on the raw TCP connection, before the (costly) handshake.
      server.on('connection', (socket: Socket) => this.admitRaw(socket))
      server.on('secureConnection', (socket) => this.options.onConnection(socket))
      server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
        this.count('tls_handshake_failed')
        this.throttle.warn('tls', 'TLS handshake failed', { code: err.code, error: err.message })
      })
      this.watch(server, `${name} TLS`)
      await listenOn(server, host, tlsPort, `${name} TLS listener`)
      this.tlsServer = server
      this.addresses.tls = server.address() as AddressInfo
      logger.info(
        `${name} over TLS listening on ${formatAddress(this.addresses.tls.address, this.addresses.tls.port)}`,
      )
    }
  }

  /** Whether every listener is bound and accepting. */
  get listening(): boolean {
    return this.servers.length > 0 && this.servers.every((s) => s.listening)
  }

  /** New certificate, key and CA for connections from now on; connected devices keep theirs. */
  reloadTls(files: TlsFiles): void {
    this.tlsServer?.setSecureContext(readTlsFiles(files))
  }

  /** Stops accepting; resolves once every listener has closed (after its connections ended). */
  close(): Promise<void> {
    return Promise.all(
      this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ).then(() => undefined)
  }

  private watch(server: Server, what: string): void {
    this.servers.push(server)
    server.on('error', (err: NodeJS.ErrnoException) => {
      // e.g. EMFILE on accept: the listener keeps running; the error is counted and reported.
      this.count(`accept_${(err.code ?? 'error').toLowerCase()}`)
      this.throttle.warn(`accept-${err.code}`, `${what} listener: cannot accept a connection`, {
        code: err.code,
        error: err.message,
      })
    })
  }

  private admit(socket: Socket): void {
    if (this.admitRaw(socket)) this.options.onConnection(socket)
  }

  /** Returns false (having destroyed the socket) for a refused connection. */
  private admitRaw(socket: Socket): boolean {
    const now = Date.now()
    const ip = socket.remoteAddress ?? ''
    let refusal: string | undefined
    if (this.options.connections() >= this.options.hardLimit) refusal = 'connection_limit'
    else if (this.rate !== undefined && !this.rate.take(now)) refusal = 'connection_rate'
    else {
      const verdict = this.options.guard.admit(ip, now)
      if (verdict !== 'ok' && verdict !== 'banned') refusal = verdict // banned: answered at LOGIN
    }
    if (refusal === undefined) return true
    this.count(refusal)
    this.throttle.warn(`refuse-${refusal}`, 'connection refused', { reason: refusal, remote: ip })
    socket.destroy()
    return false
  }

  private count(reason: string): void {
    const refused = this.options.stats.refused
    refused[reason] = (refused[reason] ?? 0) + 1
  }
}
