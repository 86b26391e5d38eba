import { createServer, type Server, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Inbox } from './inbox.js'

/**
 * One client connection to a {@link FakeBroker}: what the client sent, parsed by mqtt-packet, and
 * ways to answer — correctly, wrongly, or not at all. For the broker misbehaviours real brokers do
 * not offer on demand (a malformed packet, a PUBACK for nothing, silence after CONNECT).
 */
export class FakeConnection {
  readonly packets = new Inbox<Packet>('packets from the client')
  /** The CONNECT's protocol level (4 = 3.1.1, 5), once it came. */
  level: 3 | 4 | 5 = 4
  readonly closed: Promise<void>

  constructor(readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connect') this.level = p.protocolVersion ?? 4
      this.packets.push(p)
    })
    parser.on('error', (err) => this.packets.close(`unparseable: ${err.message}`))
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.once('close', () => this.packets.close('connection closed'))
  }

  /** Sends a packet encoded for the client's protocol level. */
  send(packet: Packet): void {
    if (!this.socket.destroyed)
      this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.level }))
  }

  sendRaw(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes)
  }

  /** Answers the CONNECT (waits for it) with success, or with `code`. */
  async accept(code = 0, properties?: Record<string, unknown>): Promise<void> {
    await this.packets.take((p) => p.cmd === 'connect', 5000, 'CONNECT')
    this.send(
      this.level === 5
        ? { cmd: 'connack', reasonCode: code, sessionPresent: false, ...(properties ? { properties } : {}) }
        : { cmd: 'connack', returnCode: code, sessionPresent: false },
    )
  }
}

/** A TCP server on 127.0.0.1 and a free port that speaks just enough MQTT for the test to script it. */
export class FakeBroker {
  readonly connections = new Inbox<FakeConnection>('client connections')
  private readonly sockets = new Set<Socket>()

  private constructor(private readonly server: Server) {}

  static async start(): Promise<FakeBroker> {
    let broker: FakeBroker | undefined
    const server = createServer((socket) => {
      broker!.sockets.add(socket)
      socket.once('close', () => broker!.sockets.delete(socket))
      broker!.connections.push(new FakeConnection(socket))
    })
    broker = new FakeBroker(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return broker
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  /** The next connection (waits for it). */
  next(timeoutMs = 5000): Promise<FakeConnection> {
    return this.connections.take(() => true, timeoutMs, 'a client connection')
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
