import { connect, type Socket } from 'node:net'
import { type ConnectionOptions, connect as connectTls } from 'node:tls'
import { Cmd } from '../../src/protocol/constants.js'
import { FrameDecoder } from '../../src/protocol/decoder.js'
import { encodeFrame } from '../../src/protocol/encoder.js'
import { Inbox } from './inbox.js'

export interface Frame {
  type: number
  msgId: number
  /** The length field: body size, or the status of a RESPONSE ([HT-2.7]). */
  length: number
  body: Buffer
  text: string
}

/**
 * A test-controlled HyperTCP client: sends exactly the bytes a test gives, records exactly the
 * bytes it receives, and decodes them the way a device does (RESPONSE statuses in the length
 * field; the login reply's status byte).
 */
export class RawClient {
  readonly socket: Socket
  readonly frames = new Inbox<Frame>('raw client frames')
  received = Buffer.alloc(0)
  readonly closed: Promise<void>
  private readonly decoder: FrameDecoder

  private constructor(socket: Socket) {
    this.socket = socket
    this.decoder = new FrameDecoder(
      65535,
      (type, msgId, body, length) => {
        this.frames.push({ type, msgId, length, body: Buffer.from(body), text: body.toString() })
        return undefined
      },
      () => {},
      'device',
    )
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
      this.decoder.push(chunk)
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.frames.close('connection closed')
        resolve()
      }),
    )
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host)
      socket.once('connect', () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  /** Over TLS (`options` give the CA, and a client certificate if any). */
  static connectTls(port: number, options: ConnectionOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connectTls({ host: '127.0.0.1', port, servername: 'localhost', ...options })
      socket.once('secureConnect', () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readableEnded
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'hex') : bytes)
  }

  sendFrame(type: number, msgId: number, body?: Buffer | string | object): void {
    const b =
      body === undefined
        ? undefined
        : Buffer.isBuffer(body)
          ? body
          : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
    this.send(encodeFrame(type, msgId, b))
  }

  /** Sends LOGIN (msg_id 1 like the original) and returns the status byte of the reply. */
  async login(token: string | object, msgId = 1): Promise<number> {
    this.decoder.expectLoginReply = true
    this.sendFrame(Cmd.LOGIN, msgId, typeof token === 'string' ? Buffer.from(token) : token)
    const reply = await this.frames.take(
      (f) => f.type === Cmd.RESPONSE && f.msgId === msgId,
      5000,
      'login reply',
    )
    return reply.length === 1 ? reply.body[0]! : -reply.length
  }

  /** The next RESPONSE to `msgId`; resolves to its length field (0 = success, else the status). */
  async response(msgId: number, timeoutMs = 5000): Promise<number> {
    const f = await this.frames.take(
      (x) => x.type === Cmd.RESPONSE && x.msgId === msgId,
      timeoutMs,
      `RESPONSE ${msgId}`,
    )
    return f.length
  }

  /** Waits for the gateway to close the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      await Promise.race([this.closed, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** The RawClients a suite opened; each is destroyed, and its close awaited, after every test. */
export interface TrackedClients {
  /** Those still to be cleaned up after the current test. */
  readonly open: RawClient[]
  /** Registers a client (or one being connected) and returns it. */
  track(client: RawClient | Promise<RawClient>): Promise<RawClient>
}

/** Registers the cleanup as an `afterEach` of the suite it is called in (or of the file). */
export function trackRawClients(): TrackedClients {
  const open: RawClient[] = []
  afterEach(async () => {
    for (const c of open.splice(0)) {
      c.destroy()
      await c.closed
    }
  })
  return {
    open,
    async track(client) {
      const c = await client
      open.push(c)
      return c
    },
  }
}
