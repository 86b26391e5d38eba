import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { Aedes } from 'aedes'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Logger } from '../log.js'
import { listenOn } from './listen.js'

export interface EmbeddedBrokerOptions {
  readonly host: string
  readonly port: number
  readonly wsPort: number | 'off'
  readonly logger: Logger
}

/** The embedded Aedes broker of standalone mode ([HT-6.1]): MQTT over TCP and over WebSocket. */
export class EmbeddedBroker {
  readonly aedes: Aedes
  readonly tcp: AddressInfo
  readonly ws: AddressInfo | undefined
  private readonly tcpServer: Server
  private readonly httpServer: HttpServer | undefined
  private readonly wss: WebSocketServer | undefined

  private constructor(aedes: Aedes, tcpServer: Server, httpServer?: HttpServer, wss?: WebSocketServer) {
    this.aedes = aedes
    this.tcpServer = tcpServer
    this.tcp = tcpServer.address() as AddressInfo
    this.httpServer = httpServer
    this.wss = wss
    this.ws = httpServer?.address() as AddressInfo | undefined
  }

  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const { logger } = options
    const aedes = await Aedes.createBroker({ id: 'hypertcp-embedded' })
    aedes.on('clientError', (client, err) =>
      logger.debug('mqtt client error', { clientId: client.id, error: err.message }),
    )
    aedes.on('connectionError', (client, err) =>
      logger.debug('mqtt connection error', { clientId: client.id, error: err.message }),
    )
    const tcpServer = createServer(aedes.handle)
    try {
      await listenOn(tcpServer, options.host, options.port, 'embedded MQTT broker')
    } catch (err) {
      await closeAedes(aedes)
      throw err
    }
    if (options.wsPort === 'off') return new EmbeddedBroker(aedes, tcpServer)
    const httpServer = createHttpServer((_req, res) => {
      res
        .writeHead(426, { 'content-type': 'text/plain' })
        .end('MQTT over WebSocket: connect with an MQTT client\n')
    })
    const wss = new WebSocketServer({ server: httpServer })
    wss.on('connection', (socket, req) => aedes.handle(createWebSocketStream(socket), req))
    try {
      await listenOn(httpServer, options.host, options.wsPort, 'embedded MQTT-over-WebSocket listener')
    } catch (err) {
      tcpServer.close()
      await closeAedes(aedes)
      throw err
    }
    return new EmbeddedBroker(aedes, tcpServer, httpServer, wss)
  }

  /** Stops listening, disconnects every client, closes the broker. */
  async close(): Promise<void> {
    const closed = [closeServer(this.tcpServer)]
    if (this.httpServer) {
      for (const client of this.wss?.clients ?? []) client.terminate()
      this.wss?.close()
      closed.push(closeServer(this.httpServer))
    }
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
