/**
 * A scripted HyperTCP peer: a net.Server on 127.0.0.1:0 whose test decides
 * every byte it sends. It decodes what the device sends into frames
 * ([HT-1.1]: u8 type, u16 msg_id, u16 length, big-endian, then the body).
 */
import net from 'node:net'
import { Cmd, HEADER_SIZE, Status } from '../../../src/protocol/constants.js'
import { FrameDecoder } from '../../../src/protocol/decoder.js'
import { writeHeader } from '../../../src/protocol/encoder.js'
import { Inbox } from '../../helpers/inbox.js'

export interface Frame {
  type: number
  id: number
  length: number
  body: Buffer
}

/** Encodes a frame; `length` defaults to the body's size (override it for status-in-length). */
export function frame(
  type: number,
  id: number,
  body: Buffer | string = Buffer.alloc(0),
  length?: number,
): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body
  const out = Buffer.alloc(HEADER_SIZE + b.length)
  writeHeader(out, 0, type, id, length ?? b.length)
  b.copy(out, HEADER_SIZE)
  return out
}

export class PeerConnection {
  /** Frames received, decoded with the gateway's own decoder ([HT-1.4]: any split). */
  readonly frames = new Inbox<Frame>('scripted peer frames')
  readonly closed: Promise<void>
  private ended = false

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true)
    const decoder = new FrameDecoder(
      0xffff,
      (type, id, body, length) => {
        this.frames.push({ type, id, length, body: Buffer.from(body) })
        return undefined
      },
      () => {},
    )
    socket.on('data', (chunk: Buffer) => decoder.push(chunk))
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true
        this.frames.close('connection closed')
        resolve()
      })
    })
  }

  /** The first unconsumed frame that matches (any frame by default), consumed. */
  nextFrame(match: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    return this.frames.take(match, timeoutMs, 'matching frame')
  }

  /** The next unconsumed frame of this type. */
  nextOfType(type: number, timeoutMs = 5000): Promise<Frame> {
    return this.frames.take((f) => f.type === type, timeoutMs, `frame of type ${type}`)
  }

  write(data: Buffer | string): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'hex') : data)
  }

  /** Writes the bytes one at a time, each in its own write() and event-loop turn. */
  async writeByByte(data: Buffer): Promise<void> {
    for (const byte of data) {
      this.socket.write(Buffer.from([byte]))
      await new Promise((r) => setImmediate(r))
    }
  }

  /** Reads the LOGIN the device must send first and answers it with `status` (one body byte [HT-2.1]). */
  async acceptLogin(status: number = Status.SUCCESS): Promise<Frame> {
    const login = await this.nextFrame()
    if (login.type !== Cmd.LOGIN) throw new Error(`expected LOGIN first, got ${JSON.stringify(login)}`)
    this.write(frame(Cmd.RESPONSE, login.id, Buffer.from([status])))
    return login
  }

  get isClosed(): boolean {
    return this.ended
  }

  destroy(): void {
    this.socket.destroy()
  }
}

export class ScriptedPeer {
  /** Accepted connections, in accept order. */
  readonly connections = new Inbox<PeerConnection>('scripted peer connections')

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.connections.push(new PeerConnection(socket)))
  }

  /** Listens on 127.0.0.1, on `port` (0: a free port the OS picks). */
  static async start(port = 0): Promise<ScriptedPeer> {
    const server = net.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    return new ScriptedPeer(server, address.port)
  }

  /** The next connection not yet returned (in accept order). */
  nextConnection(timeoutMs = 5000): Promise<PeerConnection> {
    return this.connections.take(() => true, timeoutMs, 'new connection')
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const c of this.connections.history) c.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
