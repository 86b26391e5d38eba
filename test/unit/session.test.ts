import { expect } from 'chai'
import type { AuthResult } from '../../src/auth/registry.js'
import { hypertcp } from '../../src/dialects/hypertcp/index.js'
import { LogThrottle, silentLogger } from '../../src/log.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { FrameDecoder } from '../../src/protocol/decoder.js'
import { encodeFrame } from '../../src/protocol/encoder.js'
import { Session, type SessionOptions } from '../../src/session/session.js'
import type { CloseReason, SessionHost, UplinkDone, UplinkKind } from '../../src/session/types.js'
import { WriteBatcher } from '../../src/session/write-batcher.js'
import { createStats } from '../../src/stats.js'
import { duplexPair } from '../helpers/duplex.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'

/** A host whose uplinks complete only when the test says so. */
class ScriptedHost implements SessionHost {
  readonly uplinks: { kind: UplinkKind | 'raw'; payload: unknown; done: UplinkDone }[] = []
  readonly detached: CloseReason[] = []
  attachGate: Promise<void> = Promise.resolve()
  authenticate(): AuthResult {
    const identity = {
      deviceId: 'dev-1',
      username: 'dev-1',
      tokenDigest: 'x',
      mayMessage: () => true,
      mayBroadcast: true,
    }
    return { ok: true, identity }
  }
  attach(): Promise<void> {
    return this.attachGate
  }
  uplink(_s: Session, kind: UplinkKind, _t: string, payload: string, done: UplinkDone): void {
    this.uplinks.push({ kind, payload, done })
  }
  takesRaw(type: number): boolean {
    return type === CUSTOM
  }
  uplinkRaw(_s: Session, _type: number, body: Buffer, done: UplinkDone): void {
    this.uplinks.push({ kind: 'raw', payload: body, done })
  }
  uplinkBytes(_s: Session, body: Buffer, done: UplinkDone): void {
    this.uplinks.push({ kind: 'raw', payload: body, done })
  }
  detach(_s: Session, reason: CloseReason): void {
    this.detached.push(reason)
  }
}

/** The custom command type the scripted host takes ([HT-5.6]). */
const CUSTOM = 77

const options: SessionOptions = {
  dialect: hypertcp,
  maxFrameSize: 4096,
  maxDownlinkSize: 1024,
  idCharset: 'ascii',
  loginTimeoutMs: 5000,
  keepaliveMs: 60_000,
  maxInflight: 2,
  maxWriteQueue: 65536,
  drainTimeoutMs: 30_000,
  messageRate: 0,
  messageBurst: 100,
  gatekeeper: { checkLogin: () => ({ action: 'proceed' }), loginFailed: () => {} },
  throttle: new LogThrottle(silentLogger),
  batcher: new WriteBatcher(),
}

function setup(host = new ScriptedHost(), overrides: Partial<SessionOptions> = {}) {
  const [gatewaySide, deviceSide] = duplexPair()
  const opts = { ...options, ...overrides }
  const session = new Session('s1', gatewaySide, opts, host, silentLogger, createStats())
  const replies = new Inbox<{ type: number; msgId: number; length: number }>('replies')
  const decoder = new FrameDecoder(
    65535,
    (type, msgId, _b, length) => {
      replies.push({ type, msgId, length })
      return undefined
    },
    () => {},
    'device',
  )
  decoder.expectLoginReply = true
  deviceSide.on('data', (c: Buffer) => decoder.push(c))
  const send = (type: number, id: number, body?: object) =>
    deviceSide.write(
      encodeFrame(type, id, body === undefined ? undefined : Buffer.from(JSON.stringify(body))),
    )
  return { session, host, replies, send, deviceSide, gatewaySide }
}

const msg = (n: number) => ({ targetId: 'server', payload: { n } })

/** Lets `n` event-loop turns pass (each `setImmediate` runs in the next turn's check phase). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}

/** The next `n` frames the device got, in order. */
async function nextReplies<T>(replies: Inbox<T>, n: number): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(await replies.next())
  return out
}

/** A hold no test outlasts: what ends a hold early is then what the test did. */
const LONG_HOLD_MS = 60_000

/** A logged-in session with two uplinks awaiting the host; answers held up to `holdMs`. */
async function twoInFlight(holdMs: number) {
  const s = setup(new ScriptedHost(), { batcher: new WriteBatcher(holdMs) })
  s.send(Cmd.LOGIN, 1, { token: 't' })
  await s.replies.next()
  s.send(Cmd.JSON_MESSAGE, 1, msg(1))
  s.send(Cmd.JSON_MESSAGE, 2, msg(2))
  await waitUntil(() => s.host.uplinks.length === 2, 'two uplinks in flight')
  return s
}

describe('session over a duplex pair', () => {
  it('holds frames pipelined behind LOGIN until the login is settled, then handles them in order', async () => {
    const host = new ScriptedHost()
    let open!: () => void
    host.attachGate = new Promise((resolve) => {
      open = resolve
    })
    const { session, replies, send } = setup(host)
    send(Cmd.LOGIN, 1, { token: 't' })
    send(Cmd.JSON_MESSAGE, 1, msg(1))
    send(Cmd.PING, 2)
    await turns(5) // the in-memory pair hands bytes over within a turn
    expect(session.state).to.equal('authenticating')
    expect(host.uplinks).to.have.length(0)
    expect(replies.pending()).to.have.length(0)
    open()
    expect(await replies.next()).to.deep.include({ type: Cmd.RESPONSE, msgId: 1, length: 1 }) // login reply
    await waitUntil(() => host.uplinks.length === 1, 'the pipelined message reaches the host')
    await turns(5)
    expect(replies.pending()).to.have.length(0) // the PING's answer waits for the message's
    host.uplinks[0]!.done(0)
    expect(await replies.next()).to.deep.include({ msgId: 1, length: 0 })
    expect(await replies.next()).to.deep.include({ msgId: 2, length: 0 }) // the PING, answered after
    session.close('shutdown')
  })

  describe('answers in the order of the requests, whatever order the broker confirms in [decision 22]', () => {
    it('queues immediate answers (PING, refused frames, quota, JSON ping) behind uplinks awaiting the broker', async () => {
      const { session, host, replies, send, deviceSide } = setup(new ScriptedHost(), {
        maxInflight: 16,
        messageRate: 1,
        messageBurst: 3,
      })
      send(Cmd.LOGIN, 1, { token: 't' })
      await replies.next()
      send(Cmd.JSON_MESSAGE, 1, msg(1)) // uplink (token 1 of 3)
      send(Cmd.PING, 2) // answered at once... once 1 is
      deviceSide.write(encodeFrame(Cmd.JSON_MESSAGE, 3, Buffer.from('not json'))) // refused (token 2)
      send(Cmd.JSON_MESSAGE, 4, msg(4)) // uplink (token 3)
      send(Cmd.JSON_MESSAGE, 5, { targetId: 'server', payload: { command: 'ping', n: 5 } }) // over the rate
      send(Cmd.JSON_MESSAGE, 6, msg(6)) // over the rate too
      send(99, 7) // an unknown command
      await waitUntil(() => host.uplinks.length === 2, 'two uplinks in flight')
      await turns(5)
      expect(replies.pending()).to.have.length(0)
      host.uplinks[1]!.done(0) // the broker confirms 4 first: nothing may leave yet
      await turns(5)
      expect(replies.pending()).to.have.length(0)
      host.uplinks[0]!.done(Status.SERVER_ERROR)
      expect((await nextReplies(replies, 7)).map((r) => [r.msgId, r.length])).to.deep.equal([
        [1, Status.SERVER_ERROR],
        [2, 0],
        [3, Status.ILLEGAL_COMMAND_BODY],
        [4, 0],
        [5, Status.QUOTA_LIMIT],
        [6, Status.QUOTA_LIMIT],
        [7, Status.ILLEGAL_COMMAND],
      ])
      session.close('shutdown')
    })

    it("sends a JSON ping's pong right after its ack, in its turn", async () => {
      const { session, host, replies, send } = setup(new ScriptedHost(), { maxInflight: 16 })
      send(Cmd.LOGIN, 1, { token: 't' })
      await replies.next()
      send(Cmd.JSON_MESSAGE, 1, msg(1))
      send(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { command: 'ping' } })
      send(Cmd.JSON_MESSAGE, 3, msg(3))
      await waitUntil(() => host.uplinks.length === 2, 'two uplinks in flight')
      host.uplinks[1]!.done(0)
      await turns(5)
      expect(replies.pending()).to.have.length(0)
      host.uplinks[0]!.done(0)
      expect((await nextReplies(replies, 4)).map((r) => [r.type, r.msgId])).to.deep.equal([
        [Cmd.RESPONSE, 1],
        [Cmd.RESPONSE, 2],
        [Cmd.JSON_MESSAGE, 1], // the pong: the gateway's own msg_id 1
        [Cmd.RESPONSE, 3],
      ])
      session.close('shutdown')
    })

    it('counts the answers queued behind an uplink towards maxInflight: a PING flood stops being read', async () => {
      const { session, host, replies, send } = setup() // maxInflight 2
      send(Cmd.LOGIN, 1, { token: 't' })
      await replies.next()
      send(Cmd.JSON_MESSAGE, 1, msg(1))
      for (let i = 2; i <= 10; i++) send(Cmd.PING, i)
      send(Cmd.JSON_MESSAGE, 11, msg(11))
      await waitUntil(() => host.uplinks.length === 1, 'one uplink in flight')
      await turns(5)
      expect(replies.pending()).to.have.length(0)
      host.uplinks[0]!.done(0)
      await waitUntil(() => host.uplinks.length === 2, 'the frames behind the PINGs are read')
      expect((await nextReplies(replies, 10)).map((r) => r.msgId)).to.deep.equal([
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
      ])
      session.close('shutdown')
    })

    it('on a frame too large, sends the answers ready before it, then its refusal, and closes', async () => {
      const { session, host, replies, send, deviceSide } = setup(new ScriptedHost(), { maxInflight: 16 })
      send(Cmd.LOGIN, 1, { token: 't' })
      await replies.next()
      send(Cmd.JSON_MESSAGE, 1, msg(1))
      send(Cmd.PING, 2)
      await waitUntil(() => host.uplinks.length === 1, 'one uplink in flight')
      const header = Buffer.alloc(5)
      header.writeUInt8(Cmd.JSON_MESSAGE, 0)
      header.writeUInt16BE(3, 1)
      header.writeUInt16BE(5000, 3) // over maxFrameSize (4096)
      deviceSide.write(header)
      expect(await replies.next()).to.deep.include({ msgId: 3, length: Status.ILLEGAL_COMMAND_BODY })
      await waitUntil(() => session.closed, 'the session closes')
      expect(session.closeReason).to.equal('frame_too_large')
      host.uplinks[0]!.done(0) // too late: the device was told it is closed
    })
  })

  it('stops reading at maxInflight uplinks and resumes as the broker confirms them [backpressure]', async () => {
    const { session, host, replies, send } = setup()
    send(Cmd.LOGIN, 1, { token: 't' })
    await replies.next()
    for (let i = 1; i <= 5; i++) send(Cmd.JSON_MESSAGE, i, msg(i))
    await waitUntil(() => host.uplinks.length === 2, 'two uplinks in flight')
    // The in-memory pair hands bytes over within a turn: a third frame read would be here by now.
    await turns(5)
    expect(host.uplinks).to.have.length(2) // the third is not read while two await the broker
    host.uplinks[0]!.done(0)
    expect(await replies.next()).to.deep.include({ msgId: 1, length: 0 })
    await waitUntil(() => host.uplinks.length === 3, 'a third uplink once one completed')
    host.uplinks[1]!.done(Status.SERVER_ERROR)
    expect(await replies.next()).to.deep.include({ msgId: 2, length: Status.SERVER_ERROR })
    await waitUntil(() => host.uplinks.length === 4, 'a fourth')
    for (const u of host.uplinks.slice(2)) u.done(0)
    await waitUntil(() => host.uplinks.length === 5, 'the fifth')
    host.uplinks[4]!.done(0)
    const acks = [await replies.next(), await replies.next(), await replies.next()]
    expect(acks.map((a) => a.msgId)).to.deep.equal([3, 4, 5])
    session.close('shutdown')
  })

  it('takes a mapped custom type as a raw uplink under the same in-flight bound, and refuses others [HT-5.6]', async () => {
    const { session, host, replies, send, deviceSide } = setup()
    send(Cmd.LOGIN, 1, { token: 't' })
    await replies.next()
    deviceSide.write(encodeFrame(78, 1, Buffer.from([1, 2]))) // not mapped
    expect(await replies.next()).to.deep.include({ msgId: 1, length: Status.ILLEGAL_COMMAND })
    const frames = [Buffer.from([0, 0xff, 0x10]), Buffer.alloc(0), Buffer.from('x')]
    for (const [i, body] of frames.entries()) deviceSide.write(encodeFrame(CUSTOM, 2 + i, body))
    await waitUntil(() => host.uplinks.length === 2, 'two raw uplinks in flight')
    await turns(5) // as above: a third frame read would be here by now
    expect(host.uplinks).to.have.length(2) // maxInflight counts raw uplinks too
    expect(host.uplinks.map((u) => [u.kind, (u.payload as Buffer).toString('hex')])).to.deep.equal([
      ['raw', '00ff10'],
      ['raw', ''],
    ])
    host.uplinks[0]!.done(0)
    expect(await replies.next()).to.deep.include({ msgId: 2, length: 0 })
    await waitUntil(() => host.uplinks.length === 3, 'the third once one completed')
    host.uplinks[1]!.done(Status.SERVER_ERROR)
    expect(await replies.next()).to.deep.include({ msgId: 3, length: Status.SERVER_ERROR })
    session.close('shutdown')
  })

  it('after stopReading, finishes what is in flight and reads nothing more [graceful shutdown]', async () => {
    const { session, host, replies, send } = setup()
    send(Cmd.LOGIN, 1, { token: 't' })
    await replies.next()
    send(Cmd.JSON_MESSAGE, 1, msg(1))
    await waitUntil(() => host.uplinks.length === 1, 'one uplink')
    session.stopReading()
    send(Cmd.JSON_MESSAGE, 2, msg(2))
    host.uplinks[0]!.done(0)
    expect(await replies.next()).to.deep.include({ msgId: 1, length: 0 })
    await turns(5) // a read frame would have reached the host by now
    expect(host.uplinks).to.have.length(1)
    session.close('shutdown')
    expect(host.detached).to.deep.equal(['shutdown'])
  })

  describe('answers of a pipelining device leave together (ackHoldMs) [decision 22]', () => {
    it('holds an acknowledgement while another uplink of the device awaits the broker', async () => {
      const { session, host, replies } = await twoInFlight(LONG_HOLD_MS)
      host.uplinks[0]!.done(0)
      await turns(20) // many ends of turns: the answer is held past them
      expect(replies.pending(), 'no answer while the second uplink is in flight').to.have.length(0)
      host.uplinks[1]!.done(0)
      const acks = [await replies.next(), await replies.next()]
      expect(acks.map((a) => [a.msgId, a.length])).to.deep.equal([
        [1, 0],
        [2, 0],
      ])
      session.close('shutdown')
    })

    it('holds it for at most ackHoldMs', async () => {
      const { session, host, replies } = await twoInFlight(20)
      host.uplinks[0]!.done(0)
      expect(await replies.next()).to.deep.include({ msgId: 1, length: 0 })
      expect(session.inflight, 'the second uplink is still in flight').to.equal(1)
      host.uplinks[1]!.done(0)
      expect(await replies.next()).to.deep.include({ msgId: 2, length: 0 })
      session.close('shutdown')
    })

    it('sends held answers with the next frame the gateway originates (a downlink)', async () => {
      const { session, host, replies } = await twoInFlight(LONG_HOLD_MS)
      host.uplinks[0]!.done(Status.SERVER_ERROR)
      await turns(5)
      expect(session.deliver(Cmd.JSON_MESSAGE, '{"from":"x"}')).to.equal('ok')
      expect(await replies.next()).to.deep.include({ msgId: 1, length: Status.SERVER_ERROR })
      expect(await replies.next()).to.deep.include({ type: Cmd.JSON_MESSAGE })
      expect(session.inflight).to.equal(1)
      host.uplinks[1]!.done(0)
      expect(await replies.next()).to.deep.include({ msgId: 2, length: 0 })
      session.close('shutdown')
    })

    it('flushes held answers when the session closes', async () => {
      const { session, host, replies } = await twoInFlight(LONG_HOLD_MS)
      host.uplinks[0]!.done(0)
      await turns(5)
      expect(replies.pending()).to.have.length(0)
      session.close('shutdown')
      expect(await replies.next()).to.deep.include({ msgId: 1, length: 0 })
    })
  })

  it('closes once, with one reason, whatever closes it', async () => {
    const { session, host, gatewaySide } = setup()
    session.close('kicked')
    session.close('shutdown')
    const closed = new Promise((resolve) => gatewaySide.once('close', resolve))
    gatewaySide.destroy() // the socket closes too, and tells the session
    await closed
    expect(host.detached).to.deep.equal(['kicked'])
    expect(session.closeReason).to.equal('kicked')
  })
})
