import { connect, type Socket } from 'node:net'
import { Cmd, HEADER_SIZE, Status } from '../../src/protocol/constants.js'
import { Inbox } from './inbox.js'

/** What the emulated device observed. */
export type DeviceEvent =
  | { kind: 'message'; from: string; payload: Record<string, unknown>; msgId: number }
  | { kind: 'broadcast'; from: string; payload: Record<string, unknown>; msgId: number }
  | { kind: 'ignored'; type: number; body: string } // a body the original cannot use
  | { kind: 'response'; msgId: number; length: number }
  | { kind: 'ping'; msgId: number }
  | { kind: 'redirect'; server: unknown; port: unknown }
  | { kind: 'unknown'; type: number; length: number }

/** The original parses incoming JSON into a 512-byte document ([HT-2.6]). */
const DOC_CAPACITY = 512
/** The original discards at most this many bytes of an unknown command's body. */
const DISCARD_MAX = 256

/**
 * Behaves byte for byte like the unchanged original Arduino header ([HT-2]), quirks included:
 * logs in with msg_id 1 and a raw token, accepts only RESPONSE(msg_id 1, length 1, [200]); its own
 * ids restart at 1 after login; never reads a RESPONSE body after login (so a gateway that sent
 * one would desynchronise it, and these tests would see garbage); answers PING, JSON_MESSAGE and
 * BROADCAST with an empty RESPONSE; ignores bodies whose `from` is not a string or `payload` not
 * an object; discards at most 256 bytes of unknown commands.
 */
export class OriginalDevice {
  readonly events = new Inbox<DeviceEvent>('device events')
  readonly socket: Socket
  readonly closed: Promise<void>
  loginStatus = -1
  private buf = Buffer.alloc(0)
  private counter = 0
  private loggedIn = false
  private loginWaiter: ((status: number) => void) | undefined
  private pingTimer: NodeJS.Timeout | undefined

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk])
      this.parse()
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        clearInterval(this.pingTimer)
        this.loginWaiter?.(-1)
        this.events.close('connection closed')
        resolve()
      }),
    )
  }

  /**
   * Connects and logs in as the original does. Resolves once the login reply arrives (check
   * `loginStatus`: 200 = logged in), the connection closes, or 5 s pass (the original's wait).
   */
  static connect(
    port: number,
    token: string,
    options: { pingIntervalMs?: number } = {},
  ): Promise<OriginalDevice> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('error', reject)
      socket.once('connect', () => {
        const device = new OriginalDevice(socket)
        const timer = setTimeout(() => device.loginWaiter?.(-2), 5000)
        device.loginWaiter = (status) => {
          clearTimeout(timer)
          device.loginWaiter = undefined
          device.loginStatus = status
          if (status === Status.SUCCESS) {
            device.loggedIn = true
            device.counter = 0 // [HT-2.3] its first message after login has msg_id 1 too
            const every = options.pingIntervalMs ?? 30_000
            if (every > 0) device.pingTimer = setInterval(() => device.ping(), every)
          }
          resolve(device)
        }
        device.write(Cmd.LOGIN, 1, Buffer.from(token)) // [HT-2.1]
      })
    })
  }

  get isLoggedIn(): boolean {
    return this.loggedIn
  }

  private nextId(): number {
    this.counter = this.counter >= 0xffff ? 1 : this.counter + 1
    return this.counter
  }

  private write(type: number, msgId: number, body?: Buffer): void {
    const header = Buffer.alloc(HEADER_SIZE)
    header.writeUInt8(type, 0)
    header.writeUInt16BE(msgId, 1)
    header.writeUInt16BE(body?.length ?? 0, 3)
    this.socket.write(body ? Buffer.concat([header, body]) : header)
  }

  private send(type: number, targetId: string, payload: unknown): number {
    const id = this.nextId()
    this.write(type, id, Buffer.from(JSON.stringify({ targetId, payload })))
    return id
  }

  sendMessage(targetId: string, payload: unknown): number {
    return this.send(Cmd.JSON_MESSAGE, targetId, payload)
  }

  sendToServer(payload: unknown): number {
    return this.send(Cmd.JSON_MESSAGE, 'server', payload)
  }

  broadcastMessage(payload: unknown): number {
    return this.send(Cmd.BROADCAST, 'broadcast', payload)
  }

  ping(): number {
    const id = this.nextId()
    this.write(Cmd.PING, id)
    return id
  }

  close(): void {
    clearInterval(this.pingTimer)
    this.socket.end()
  }

  destroy(): void {
    clearInterval(this.pingTimer)
    this.socket.destroy()
  }

  /** The original's read loop. */
  private parse(): void {
    for (;;) {
      if (this.buf.length < HEADER_SIZE) return
      const type = this.buf.readUInt8(0)
      const msgId = this.buf.readUInt16BE(1)
      const length = this.buf.readUInt16BE(3)
      if (type === Cmd.RESPONSE) {
        if (!this.loggedIn) {
          // Waiting for the login reply: RESPONSE, msg_id 1, length 1, one status byte.
          if (msgId === 1 && length === 1) {
            if (this.buf.length < HEADER_SIZE + 1) return
            const status = this.buf.readUInt8(HEADER_SIZE)
            this.buf = this.buf.subarray(HEADER_SIZE + 1)
            this.loginWaiter?.(status)
            continue
          }
          this.buf = this.buf.subarray(HEADER_SIZE)
          this.loginWaiter?.(-length) // any other shape is a failed login
          continue
        }
        // [HT-2.7] After login the body of a RESPONSE is never read.
        this.buf = this.buf.subarray(HEADER_SIZE)
        this.events.push({ kind: 'response', msgId, length })
        continue
      }
      if (type === Cmd.JSON_MESSAGE || type === Cmd.BROADCAST || type === Cmd.REDIRECT) {
        if (this.buf.length < HEADER_SIZE + length) return
        const body = this.buf.subarray(HEADER_SIZE, HEADER_SIZE + length).toString()
        this.buf = this.buf.subarray(HEADER_SIZE + length)
        this.onBody(type, msgId, body)
        continue
      }
      if (type === Cmd.PING) {
        this.buf = this.buf.subarray(HEADER_SIZE + Math.min(length, this.buf.length - HEADER_SIZE))
        this.events.push({ kind: 'ping', msgId })
        this.write(Cmd.RESPONSE, msgId) // [HT-2.5]
        continue
      }
      // Unknown command: the original discards at most 256 bytes (and loses sync beyond).
      const skip = Math.min(length, DISCARD_MAX)
      if (this.buf.length < HEADER_SIZE + skip) return
      this.buf = this.buf.subarray(HEADER_SIZE + skip)
      this.events.push({ kind: 'unknown', type, length })
    }
  }

  private onBody(type: number, msgId: number, body: string): void {
    let doc: unknown
    try {
      doc = body.length <= DOC_CAPACITY ? JSON.parse(body) : undefined
    } catch {
      doc = undefined
    }
    if (type === Cmd.REDIRECT) {
      const d = (doc ?? {}) as Record<string, unknown>
      this.events.push({ kind: 'redirect', server: d.server, port: d.port })
      return
    }
    this.write(Cmd.RESPONSE, msgId) // [HT-2.5] answered whatever the body
    const d = doc as Record<string, unknown> | undefined
    const payload = d?.payload
    if (
      typeof d?.from === 'string' &&
      typeof payload === 'object' &&
      payload !== null &&
      !Array.isArray(payload)
    ) {
      const kind = type === Cmd.BROADCAST ? 'broadcast' : 'message'
      this.events.push({ kind, from: d.from, payload: payload as Record<string, unknown>, msgId })
    } else {
      this.events.push({ kind: 'ignored', type, body })
    }
  }
}
