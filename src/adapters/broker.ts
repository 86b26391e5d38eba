import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http'
import { type AddressInfo, createServer, type Server } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { Aedes, type AedesOptions, type AedesPublishPacket } from 'aedes'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { IpGuard } from '../limits/ip-guard.js'
import { type Logger, LogThrottle } from '../log.js'
import type { BrokerAuth } from './broker-auth.js'
import { readTlsFiles, type TlsFiles } from './device-listener.js'
import { formatAddress, listenOn } from './listen.js'
import { guardPacketSize } from './packet-size-guard.js'
import { RetainedBudget } from './retained-budget.js'
import { indexedMemoryPersistence } from './retained-index.js'

export interface EmbeddedBrokerOptions {
  readonly host: string
  readonly port: number
  readonly wsPort: number | 'off'
  /** MQTT over TLS, with the device listener's certificate. */
  readonly tlsPort: number | 'off'
  readonly tls: TlsFiles
  /** Who may log in, and what each client may do. */
  readonly auth: BrokerAuth
  /** The HyperTCP listener's per-address rules: deny and allow lists, connection rate, bans. */
  readonly guard?: IpGuard
  /** Largest packet body a client may send, bytes: a client announcing more is closed unread. */
  readonly maxMessageSize: number
  /**
   * Origins whose pages may connect over WebSocket; a browser sends one, other clients none (and
   * are let in). Anything else gets 403: a page elsewhere cannot use a LAN user's browser.
   */
  readonly wsOrigins: readonly string[]
  /** Bounds of the retained store (presence topics, `exempt`, aside). */
  readonly retained: {
    readonly maxMessages: number
    readonly maxBytes: number
    exempt(topic: string): boolean
  }
  /** Connections held at once, all listeners; past it new ones are closed on accept. */
  readonly maxConnections: number
  /** Ms a client has to send CONNECT. */
  readonly connectTimeoutMs: number
  readonly logger: Logger
}

/** The embedded Aedes broker of standalone mode ([HT-6.1]): MQTT over TCP and over WebSocket. */
export class EmbeddedBroker {
  readonly aedes: Aedes
  readonly tcp: AddressInfo
  readonly ws: AddressInfo | undefined
  readonly tls: AddressInfo | undefined
  private readonly servers: (Server | HttpServer)[] = []
  private wss: WebSocketServer | undefined
  private tlsServer: TlsServer | undefined

  private constructor(
    aedes: Aedes,
    tcpServer: Server,
    extra: { httpServer?: HttpServer; wss?: WebSocketServer; tlsServer?: TlsServer },
  ) {
    this.aedes = aedes
    this.tcp = tcpServer.address() as AddressInfo
    this.servers.push(tcpServer)
    if (extra.httpServer) this.servers.push(extra.httpServer)
    if (extra.tlsServer) this.servers.push(extra.tlsServer)
    this.wss = extra.wss
    this.tlsServer = extra.tlsServer
    this.ws = extra.httpServer?.address() as AddressInfo | undefined
    this.tls = extra.tlsServer?.address() as AddressInfo | undefined
  }

  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const { logger } = options
    const brokerOptions: AedesOptions = {
      id: 'hypertcp-embedded',
      connectTimeout: options.connectTimeoutMs,
      persistence: indexedMemoryPersistence(),
      ...options.auth.hooks(),
    }
    const aedes = await Aedes.createBroker(brokerOptions)
    const throttle = new LogThrottle(logger)
    const retained = new RetainedBudget(
      options.retained.maxMessages,
      options.retained.maxBytes,
      options.retained.exempt,
      (topic) => {
        throttle.warn(
          'retained_evicted',
          'retained message cleared: over maxRetainedMessages/maxRetainedBytes',
          {
            topic,
          },
        )
        aedes.publish(
          {
            cmd: 'publish',
            topic,
            payload: Buffer.alloc(0),
            qos: 0,
            retain: true,
            dup: false,
          } as AedesPublishPacket,
          () => {},
        )
      },
    )
    aedes.on('publish', (packet) => {
      if (packet.retain) retained.retained(packet.topic, (packet.payload as Buffer).length)
    })
    // Every connection, whatever its listener, passes the address rules and is watched for
    // oversize packets from its first byte.
    let open = 0
    const handle = (stream: Duplex, address = '', req?: IncomingMessage) => {
      const verdict =
        open >= options.maxConnections
          ? 'max_connections'
          : (options.guard?.admit(address, Date.now()) ?? 'ok')
      if (verdict !== 'ok') {
        throttle.warn(`refused:${verdict}`, 'mqtt connection refused', { remote: address, reason: verdict })
        stream.destroy()
        return
      }
      open++
      stream.once('close', () => open--)
      options.auth.connected(aedes.handle(stream, req), address)
      guardPacketSize(stream, options.maxMessageSize, (announced) =>
        throttle.warn('oversize', 'mqtt client closed: packet over maxBrokerMessageSize', {
          address,
          announced,
          limit: options.maxMessageSize,
        }),
      )
    }
    aedes.on('clientError', (client, err) =>
      logger.debug('mqtt client error', { clientId: client.id, error: err.message }),
    )
    aedes.on('connectionError', (client, err) =>
      logger.debug('mqtt connection error', { clientId: client.id, error: err.message }),
    )
    const started: (Server | HttpServer)[] = []
    try {
      const tcpServer = createServer((socket) => handle(socket, socket.remoteAddress))
      await listenOn(tcpServer, options.host, options.port, 'embedded MQTT broker')
      started.push(tcpServer)
      const tcp = tcpServer.address() as AddressInfo
      logger.info(`embedded MQTT broker listening on ${formatAddress(tcp.address, tcp.port)}`)
      const extra: { httpServer?: HttpServer; wss?: WebSocketServer; tlsServer?: TlsServer } = {}
      if (options.wsPort !== 'off') {
        const httpServer = createHttpServer((_req, res) => {
          res
            .writeHead(426, { 'content-type': 'text/plain' })
            .end('MQTT over WebSocket: connect with an MQTT client\n')
        })
        // One MQTT packet per WebSocket message, in practice: ws refuses (1009) a larger message
        // before buffering it, the guard any packet spread over several.
        const allowed = new Set(options.wsOrigins)
        const wss = new WebSocketServer({
          server: httpServer,
          maxPayload: options.maxMessageSize + 5,
          verifyClient: (
            { origin, req }: { origin: string | undefined; req: IncomingMessage },
            done: (ok: boolean, code?: number, message?: string) => void,
          ) => {
            if (origin === undefined || allowed.has(origin)) return done(true)
            throttle.warn('ws_origin', 'mqtt websocket refused: origin not in brokerWsOrigins', {
              remote: req.socket.remoteAddress,
              origin,
            })
            done(false, 403, 'Origin not allowed')
          },
        })
        wss.on('connection', (socket, req) =>
          handle(createWebSocketStream(socket), req.socket.remoteAddress, req),
        )
        await listenOn(httpServer, options.host, options.wsPort, 'embedded MQTT-over-WebSocket listener')
        started.push(httpServer)
        Object.assign(extra, { httpServer, wss })
        const ws = httpServer.address() as AddressInfo
        logger.info(`embedded MQTT-over-WebSocket listening on ${formatAddress(ws.address, ws.port)}`)
      }
      if (options.tlsPort !== 'off') {
        const tlsServer = createTlsServer(readTlsFiles({ ...options.tls, clientAuth: 'none' }), (socket) =>
          handle(socket, socket.remoteAddress),
        )
        await listenOn(tlsServer, options.host, options.tlsPort, 'embedded MQTT-over-TLS listener')
        started.push(tlsServer)
        extra.tlsServer = tlsServer
        const tls = tlsServer.address() as AddressInfo
        logger.info(`embedded MQTT-over-TLS listening on ${formatAddress(tls.address, tls.port)}`)
      }
      return new EmbeddedBroker(aedes, tcpServer, extra)
    } catch (err) {
      for (const server of started) server.close()
      await closeAedes(aedes)
      throw err
    }
  }

  /** New certificate and key for MQTT-over-TLS connections from now on. */
  reloadTls(files: TlsFiles): void {
    this.tlsServer?.setSecureContext(readTlsFiles({ ...files, clientAuth: 'none' }))
  }

  /** Stops listening, disconnects every client, closes the broker. */
  async close(): Promise<void> {
    for (const client of this.wss?.clients ?? []) client.terminate()
    this.wss?.close()
    const closed = this.servers.map(closeServer)
    await closeAedes(this.aedes)
    await Promise.all(closed)
  }
}

function closeAedes(aedes: Aedes): Promise<void> {
  return new Promise((resolve) => aedes.close(() => resolve()))
}

function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}
