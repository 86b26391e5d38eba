import { expect } from 'chai'
import type { AuthResult } from '../../src/auth/registry.js'
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
  detach(_s: Session, reason: CloseReason): void {
    this.detached.push(reason)
  }
}

/** The custom command type the scripted host takes ([HT-5.6]). */
const CUSTOM = 77

const options: SessionOptions = {
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
    expect(await replies.next()).to.deep.include({ msgId: 2, length: 0 }) // the PING, answered after
    session.close('shutdown')
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
