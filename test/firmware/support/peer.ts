/**
 * A scripted HyperTCP peer: a net.Server on 127.0.0.1:0 whose test decides
 * every byte it sends. It decodes what the device sends into frames
 * ([HT-1.1]: u8 type, u16 msg_id, u16 length, big-endian, then the body).
 */
import net from 'node:net'

export const CMD = { RESPONSE: 0, PING: 6, LOGIN: 29, JSON_MESSAGE: 30, REDIRECT: 41, BROADCAST: 50 } as const
export const STATUS = {
  SUCCESS: 200,
  QUOTA_LIMIT: 1,
  ILLEGAL_COMMAND: 2,
  NOT_AUTHENTICATED: 5,
  NOT_ALLOWED: 6,
  INVALID_TOKEN: 9,
  ILLEGAL_COMMAND_BODY: 11,
  TIMEOUT: 16,
  SERVER_ERROR: 19,
} as const

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
  const h = Buffer.alloc(5)
  h.writeUInt8(type, 0)
  h.writeUInt16BE(id, 1)
  h.writeUInt16BE(length ?? b.length, 3)
  return Buffer.concat([h, b])
}

/** Frames from a byte stream, whatever the split [HT-1.4]. */
export class FrameReader {
  private buf = Buffer.alloc(0)

  push(chunk: Buffer): Frame[] {
    this.buf = Buffer.concat([this.buf, chunk])
    const out: Frame[] = []
    while (this.buf.length >= 5) {
      const length = this.buf.readUInt16BE(3)
      if (this.buf.length < 5 + length) break
      out.push({
        type: this.buf.readUInt8(0),
        id: this.buf.readUInt16BE(1),
        length,
        body: Buffer.from(this.buf.subarray(5, 5 + length)),
      })
      this.buf = this.buf.subarray(5 + length)
    }
    return out
  }
}

interface FrameWaiter {
  match: (f: Frame) => boolean
  resolve: (f: Frame) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

export class PeerConnection {
  /** Every frame received, in order (consumed or not). */
  readonly frames: Frame[] = []
  private readonly consumed: boolean[] = []
  private readonly reader = new FrameReader()
  private readonly waiters = new Set<FrameWaiter>()
  private ended = false
  readonly closed: Promise<void>

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.reader.push(chunk)) {
        this.frames.push(f)
        this.consumed.push(false)
        this.dispatch(this.frames.length - 1)
      }
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true
        for (const w of this.waiters) {
          clearTimeout(w.timer)
          w.reject(new Error(`connection closed while waiting for a frame; got ${formatFrames(this.frames)}`))
        }
        this.waiters.clear()
        resolve()
      })
    })
  }

  /** The first unconsumed frame that matches (any frame by default), consumed. */
  nextFrame(match: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    for (let i = 0; i < this.frames.length; i++) {
      const f = this.frames[i]!
      if (!this.consumed[i] && match(f)) {
        this.consumed[i] = true
        return Promise.resolve(f)
      }
    }
    if (this.ended) return Promise.reject(new Error(`connection closed; got ${formatFrames(this.frames)}`))
    return new Promise((resolve, reject) => {
      const w: FrameWaiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w)
          reject(new Error(`no matching frame within ${timeoutMs} ms; got ${formatFrames(this.frames)}`))
        }, timeoutMs),
      }
      this.waiters.add(w)
    })
  }

  /** The next unconsumed frame of this type. */
  nextOfType(type: number, timeoutMs = 5000): Promise<Frame> {
    return this.nextFrame((f) => f.type === type, timeoutMs)
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
  async acceptLogin(status: number = STATUS.SUCCESS): Promise<Frame> {
    const login = await this.nextFrame()
    if (login.type !== CMD.LOGIN) throw new Error(`expected LOGIN first, got ${formatFrames([login])}`)
    this.write(frame(CMD.RESPONSE, login.id, Buffer.from([status])))
    return login
  }

  get isClosed(): boolean {
    return this.ended
  }

  destroy(): void {
    this.socket.destroy()
  }

  private dispatch(index: number): void {
    const f = this.frames[index]!
    for (const w of this.waiters) {
      if (w.match(f)) {
        this.consumed[index] = true
        this.waiters.delete(w)
        clearTimeout(w.timer)
        w.resolve(f)
        return
      }
    }
  }
}

export class ScriptedPeer {
  readonly connections: PeerConnection[] = []
  private taken = 0
  private readonly arrivals: Array<() => void> = []

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => {
      this.connections.push(new PeerConnection(socket))
      for (const wake of this.arrivals.splice(0)) wake()
    })
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
  async nextConnection(timeoutMs = 5000): Promise<PeerConnection> {
    const deadline = Date.now() + timeoutMs
    while (this.taken >= this.connections.length) {
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`no new connection within ${timeoutMs} ms (had ${this.connections.length})`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.arrivals.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.connections[this.taken++]!
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const c of this.connections) c.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

export function formatFrames(frames: Frame[]): string {
  if (frames.length === 0) return 'no frames'
  return frames
    .map(
      (f) =>
        `{type ${f.type} id ${f.id} len ${f.length}${f.body.length ? ` ${JSON.stringify(f.body.toString())}` : ''}}`,
    )
    .join(', ')
}
