/**
 * The firmware library (firmware/src, built for Linux with the host shim)
 * against a scripted peer that sends exact bytes: the behaviours that are
 * hard to provoke with a real gateway. No gateway needed.
 */
import net from 'node:net'
import { expect } from 'chai'
import fc from 'fast-check'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { useCleanups } from '../helpers/cleanups.js'
import { bytes, vector } from '../helpers/vectors.js'
import { useFirmwareBuild } from './support/build.js'
import { type DeviceOptions, DeviceProcess } from './support/device.js'
import { frame, type PeerConnection, ScriptedPeer } from './support/peer.js'

const LOCAL = '127.0.0.1'

describe('firmware library vs a scripted peer', function () {
  this.timeout(20000)
  const firmware = useFirmwareBuild()
  // Last started, first stopped: devices first (they were registered after their peers), then peers.
  const cleanups = useCleanups()

  async function startPeer(): Promise<ScriptedPeer> {
    const p = await ScriptedPeer.start()
    cleanups.push(() => p.close())
    return p
  }

  function startDevice(options: DeviceOptions): DeviceProcess {
    const d = DeviceProcess.start(firmware().device, options)
    cleanups.push(() => d.stop())
    return d
  }

  /** A device logged in to a fresh scripted peer. */
  async function online(options: Partial<DeviceOptions> = {}) {
    const peer = await startPeer()
    const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:tok-1`], ...options })
    const conn = await peer.nextConnection()
    await conn.acceptLogin()
    await dev.waitFor(/^LOGIN_OK i=0/)
    return { peer, dev, conn }
  }

  describe('login', () => {
    it('sends the raw token exactly as an unchanged device does, and blocks in connect() [HT-2.1]', async () => {
      const peer = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:tok-1`], blocking: true })
      const conn = await peer.nextConnection()
      const login = await conn.nextFrame()
      expect(frame(login.type, login.id, login.body).toString('hex')).to.equal(vector('login_raw_token').hex)
      conn.write(bytes('login_ok'))
      await dev.waitFor(/^CONNECT_RESULT i=0 ok=1$/)
      await dev.waitFor(/^LOGIN_OK i=0 host=127\.0\.0\.1 port=\d+$/)
    })

    it('claims a device id with the JSON login form [HT-2.2]', async () => {
      const peer = await startPeer()
      startDevice({ connect: [`${LOCAL}:${peer.port}:tok-2:dev-2`] })
      const conn = await peer.nextConnection()
      const login = await conn.nextFrame()
      expect(frame(login.type, login.id, login.body).toString('hex')).to.equal(vector('login_json_form').hex)
    })

    it('stops retrying after INVALID_TOKEN or NOT_ALLOWED, and reports the status', async () => {
      for (const status of [Status.INVALID_TOKEN, Status.NOT_ALLOWED]) {
        const peer = await startPeer()
        const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:bad`], backoff: [20, 40] })
        const conn = await peer.nextConnection()
        await conn.acceptLogin(status)
        conn.destroy()
        await dev.waitFor(new RegExp(`^LOGIN_FAILED i=0 status=${status}$`))
        await dev.waitFor(/^DISCONNECTED i=0 reason=login_refused$/)
        await dev.command(
          'state 0',
          new RegExp(`^STATE i=0 state=refused retrying=0 attempts=1 login_status=${status} `),
        )
        // No retry pending (retrying=0 above): no timer is armed that could reconnect.
        expect(peer.connections.history).to.have.length(1)
      }
    })

    it('retries a login that failed with a transient status (SERVER_ERROR)', async () => {
      const peer = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:tok-1`], backoff: [20, 40] })
      const first = await peer.nextConnection()
      await first.acceptLogin(Status.SERVER_ERROR)
      await dev.waitFor(/^LOGIN_FAILED i=0 status=19$/)
      await dev.waitFor(/^DISCONNECTED i=0 reason=login_failed$/)
      const second = await peer.nextConnection()
      await second.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
    })

    it('reads a login reply carried in the length field (no body) [HT-2.7]', async () => {
      const peer = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:bad`] })
      const conn = await peer.nextConnection()
      await conn.nextOfType(Cmd.LOGIN)
      conn.write(frame(Cmd.RESPONSE, 1, Buffer.alloc(0), Status.INVALID_TOKEN))
      await dev.waitFor(/^LOGIN_FAILED i=0 status=9$/)
      await dev.waitFor(/^DISCONNECTED i=0 reason=login_refused$/)
    })

    it('gives up on a server that accepts the connection but never answers the login, and retries', async () => {
      const peer = await startPeer()
      const dev = startDevice({
        connect: [`${LOCAL}:${peer.port}:tok-1`],
        loginTimeout: 300,
        backoff: [20, 40],
      })
      const silent = await peer.nextConnection()
      await silent.nextOfType(Cmd.LOGIN)
      await dev.waitFor(/^LOGIN_FAILED i=0 status=16$/) // TIMEOUT
      await dev.waitFor(/^DISCONNECTED i=0 reason=login_timeout$/)
      await silent.closed
      const next = await peer.nextConnection()
      await next.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
    })
  })

  describe('sending', () => {
    it('uses the original envelope and numbering, byte for byte [HT-2.3, HT-2.4]', async () => {
      const { dev, conn } = await online()
      await dev.command('server 0 {"temperature":25.6}', /^SENT i=0 id=1$/)
      const first = await conn.nextOfType(Cmd.JSON_MESSAGE)
      expect(frame(first.type, first.id, first.body).toString('hex')).to.equal(vector('json_to_server').hex)

      await dev.command('send 0 dev-2 {"a":[1,true,null,"x"]}', /^SENT i=0 id=2$/)
      const d2d = await conn.nextOfType(Cmd.JSON_MESSAGE)
      expect(d2d.id).to.equal(2)
      expect(d2d.body.toString()).to.equal('{"targetId":"dev-2","payload":{"a":[1,true,null,"x"]}}')

      // Not one JSON value: refused, nothing sent, no msg_id used.
      await dev.command('server 0 {"x":', /^SEND_FAILED i=0$/)
      await dev.command('server 0 {"x":1} {"y":2}', /^SEND_FAILED i=0$/)

      // Sent verbatim, less surrounding whitespace; the target id is escaped.
      await dev.command('send 0 we"ird   { "x" : [1, 2] }  ', /^SENT i=0 id=3$/)
      const odd = await conn.nextOfType(Cmd.JSON_MESSAGE)
      expect(odd.body.toString()).to.equal('{"targetId":"we\\"ird","payload":{ "x" : [1, 2] }}')
      expect(JSON.parse(odd.body.toString())).to.deep.equal({ targetId: 'we"ird', payload: { x: [1, 2] } })

      await dev.command('bcast 0 {"notification":"System update available"}', /^SENT i=0 id=4$/)
      const bcast = await conn.nextOfType(Cmd.BROADCAST)
      expect(frame(bcast.type, bcast.id, bcast.body).toString('hex')).to.equal(
        vector('broadcast_from_device').hex,
      )
    })

    it('never sends msg_id 0: the counter wraps from 65535 to 1 [HT-1.5]', async () => {
      const { dev, conn } = await online({ keepalive: 0 })
      await dev.command('msgid 0 65534', /^OK msgid$/)
      const sent: number[] = []
      for (let k = 0; k < 4; k++) {
        const m = await dev.command(`server 0 {"k":${k}}`, /^SENT i=0 id=(\d+)$/)
        sent.push(Number(m[1]))
      }
      const received: number[] = []
      for (let k = 0; k < 4; k++) received.push((await conn.nextOfType(Cmd.JSON_MESSAGE)).id)
      expect(sent).to.deep.equal([65534, 65535, 1, 2])
      expect(received).to.deep.equal([65534, 65535, 1, 2])
      // msgid 0 is turned into 1
      await dev.command('msgid 0 0', /^OK msgid$/)
      await dev.command('server 0 {}', /^SENT i=0 id=1$/)
    })

    it('sends frames of custom command types with raw bodies [HT-5.6]', async () => {
      const { dev, conn } = await online()
      await dev.command('raw 0 77 00ff10', /^SENT i=0 id=1$/)
      const f = await conn.nextOfType(77)
      expect(f.body.toString('hex')).to.equal('00ff10')
    })

    it('refuses to send while offline', async () => {
      const peer = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${peer.port}:tok-1`] })
      await peer.nextConnection() // never answered: the device is not logged in
      await dev.command('server 0 {}', /^SEND_FAILED i=0$/)
    })
  })

  describe('receiving', () => {
    it('delivers and acknowledges messages and broadcasts, and answers PING [HT-2.5, HT-2.6]', async () => {
      const { dev, conn } = await online()
      conn.write(bytes('downlink'))
      const msg = await dev.waitFor(/^MSG i=0 from=(\S+) payload=(.*)$/)
      expect(msg[1]).to.equal('server')
      expect(JSON.parse(msg[2]!)).to.deep.equal({ command: 'control', device: 'relay_1', action: 'toggle' })
      const ack = await conn.nextOfType(Cmd.RESPONSE)
      expect(frame(ack.type, ack.id, ack.body).toString('hex')).to.equal(vector('device_ack_of_downlink').hex)

      conn.write(bytes('broadcast_to_device'))
      const b = await dev.waitFor(/^BCAST i=0 from=(\S+) payload=(.*)$/)
      expect(b[1]).to.equal('dev-1')
      expect(JSON.parse(b[2]!)).to.deep.equal({ notification: 'System update available' })
      expect((await conn.nextOfType(Cmd.RESPONSE)).id).to.equal(2)

      conn.write(frame(Cmd.PING, 7))
      const pong = await conn.nextOfType(Cmd.RESPONSE)
      expect([pong.id, pong.length]).to.deep.equal([7, 0])
    })

    it('decodes escapes in `from`, keeps the payload text as sent, and ignores malformed envelopes [HT-2.6]', async () => {
      const { dev, conn } = await online()
      const bad = [
        '{"from":1,"payload":{}}',
        '{"from":"x","payload":[1]}',
        '{"payload":{}}',
        '{"from":"x",',
        'nope',
      ]
      bad.forEach((body, k) => {
        conn.write(frame(Cmd.JSON_MESSAGE, 10 + k, body))
      })
      conn.write(
        frame(Cmd.JSON_MESSAGE, 20, '{"payload": {"k": "v\\n"}, "from": "a\\"b\\u00e9\\ud83d\\ude00"}'),
      )
      for (let k = 0; k < bad.length; k++)
        await dev.waitFor(new RegExp(`^DROP i=0 type=30 id=${10 + k} len=\\d+ reason=malformed$`))
      const msg = await dev.waitFor(/^MSG i=0 from=(.+) payload=(.*)$/)
      expect(msg[1]).to.equal('a"bé😀')
      expect(msg[2]).to.equal('{"k": "v\\n"}')
      // Every message is acknowledged, malformed or not, as an unchanged device does.
      const ids: number[] = []
      for (let k = 0; k <= bad.length; k++) ids.push((await conn.nextOfType(Cmd.RESPONSE)).id)
      expect(ids).to.deep.equal([10, 11, 12, 13, 14, 20])
    })

    it('reads RESPONSE frames without a body and statuses in the length field [HT-2.7]', async () => {
      const { dev, conn } = await online()
      await dev.command('server 0 {"n":1}', /^SENT i=0 id=1$/)
      await dev.command('server 0 {"n":2}', /^SENT i=0 id=2$/)
      // One write: success for 1, ILLEGAL_COMMAND_BODY (11) in the length
      // field of 2, then a message. Reading 11 "body" bytes after the second
      // RESPONSE would swallow the message's header.
      conn.write(
        Buffer.concat([
          bytes('ack_ok'),
          bytes('ack_illegal_body'),
          frame(Cmd.JSON_MESSAGE, 3, '{"from":"server","payload":{"after":true}}'),
        ]),
      )
      await dev.waitFor(/^ACK i=0 id=1 status=0$/)
      await dev.waitFor(/^ACK i=0 id=2 status=11$/)
      const msg = await dev.waitFor(/^MSG i=0 from=server payload=(.*)$/)
      expect(JSON.parse(msg[1]!)).to.deep.equal({ after: true })
    })

    it('skips an unknown command with a 3000-byte body and reads the frame after it', async () => {
      const { dev, conn } = await online()
      const big = Buffer.alloc(3000)
      for (let k = 0; k < big.length; k++) big[k] = (k * 7 + 3) & 0xff // includes bytes that look like headers
      conn.write(
        Buffer.concat([
          frame(99, 5, big),
          frame(77, 6, 'abcd'),
          frame(Cmd.JSON_MESSAGE, 7, '{"from":"server","payload":{"still":"in sync"}}'),
        ]),
      )
      await dev.waitFor(/^DROP i=0 type=99 id=5 len=3000 reason=too_large$/)
      await dev.waitFor(/^FRAME i=0 type=77 id=6 len=4 hex=61626364$/)
      const msg = await dev.waitFor(/^MSG i=0 from=server payload=(.*)$/)
      expect(JSON.parse(msg[1]!)).to.deep.equal({ still: 'in sync' })
    })

    it('refuses a message bigger than its buffer without losing sync (acknowledged, reported)', async () => {
      const { dev, conn } = await online()
      const filler = 'x'.repeat(2000)
      const huge = `{"from":"server","payload":{"f":"${filler}"}}`
      conn.write(
        Buffer.concat([
          frame(Cmd.JSON_MESSAGE, 9, huge),
          frame(Cmd.JSON_MESSAGE, 10, '{"from":"server","payload":{}}'),
        ]),
      )
      await dev.waitFor(new RegExp(`^DROP i=0 type=30 id=9 len=${huge.length} reason=too_large$`))
      await dev.waitFor(/^MSG i=0 from=server payload=\{\}$/)
      expect((await conn.nextOfType(Cmd.RESPONSE)).id).to.equal(9)
      expect((await conn.nextOfType(Cmd.RESPONSE)).id).to.equal(10)
      // A body of exactly the buffer size (1024) still fits.
      const shell = '{"from":"server","payload":{"f":""}}'
      const fits = shell.replace('""', `"${'y'.repeat(1024 - shell.length)}"`)
      expect(fits.length).to.equal(1024)
      conn.write(frame(Cmd.JSON_MESSAGE, 11, fits))
      await dev.waitFor(/^MSG i=0 from=server payload=\{"f":"y+"\}$/)
    })

    it('survives malformed, truncated and deeply nested bodies (fuzzed; the device runs under ASan/UBSan)', async () => {
      const { dev, conn } = await online()
      const valid = '{"from":"dev-9","payload":{"a":[1,2,{"b":"c\\u0041"}],"d":-1.5e3,"e":null}}'
      const bodies: Buffer[] = [
        Buffer.from(`{"from":"x","payload":${'['.repeat(5000)}`), // would blow an unbounded recursion
        Buffer.from(`{"from":"x","payload":{"a":${'['.repeat(20)}1${']'.repeat(20)}}}`), // deeper than the limit
        Buffer.from('{"from":"\\ud800","payload":{}}'), // lone surrogate
        Buffer.from('{"from":"\\u00","payload":{}}'),
        Buffer.from('{"from":"x","payload":{"k":"\u0001"}}'), // raw control character
      ]
      for (let cut = 0; cut < valid.length; cut += 3) bodies.push(Buffer.from(valid.slice(0, cut)))
      for (const sample of fc.sample(fc.oneof(fc.json(), fc.string(), fc.uint8Array({ maxLength: 64 })), {
        numRuns: 150,
        seed: 20240101,
      })) {
        bodies.push(typeof sample === 'string' ? Buffer.from(sample) : Buffer.from(sample))
      }
      conn.write(
        Buffer.concat([
          ...bodies.map((b, k) => frame(k % 2 ? Cmd.BROADCAST : Cmd.JSON_MESSAGE, k + 1, b)),
          frame(Cmd.JSON_MESSAGE, 60000, valid),
        ]),
      )
      const msg = await dev.waitFor(/^MSG i=0 from=dev-9 payload=(.*)$/)
      expect(JSON.parse(msg[1]!)).to.deep.equal({ a: [1, 2, { b: 'cA' }], d: -1500, e: null })
      // Every frame was acknowledged, in order, and the stream stayed in sync.
      const ids: number[] = []
      for (let k = 0; k <= bodies.length; k++) ids.push((await conn.nextOfType(Cmd.RESPONSE)).id)
      expect(ids).to.deep.equal([...bodies.map((_, k) => k + 1), 60000])
      expect(dev.running).to.equal(true)
    })

    it('gives the same frames for any split of the bytes, down to one byte at a time [HT-1.4]', async () => {
      const { dev, conn } = await online()
      const stream = Buffer.concat([
        bytes('downlink'),
        frame(Cmd.PING, 2),
        frame(99, 3, Buffer.alloc(1500, 0x1e)),
        bytes('broadcast_to_device'),
      ])
      await conn.writeByByte(stream)
      await dev.waitFor(/^MSG i=0 from=server /)
      await dev.waitFor(/^DROP i=0 type=99 id=3 len=1500 reason=too_large$/)
      await dev.waitFor(/^BCAST i=0 from=dev-1 /)
      const acks = [
        await conn.nextOfType(Cmd.RESPONSE),
        await conn.nextOfType(Cmd.RESPONSE),
        await conn.nextOfType(Cmd.RESPONSE),
      ]
      expect(acks.map((a) => a.id)).to.deep.equal([1, 2, 2])
    })
  })

  describe('redirect [HT-2.8]', () => {
    /** A device logged in on peer `a`, then sent to peer `b` with the JSON REDIRECT. */
    async function redirectedFromAToB() {
      const a = await startPeer()
      const b = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${a.port}:tok-1`] })
      const a1 = await a.nextConnection()
      await a1.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
      a1.write(frame(Cmd.REDIRECT, 3, JSON.stringify({ server: LOCAL, port: b.port })))
      return { a, b, dev, a1 }
    }

    it('moves to the new server on the JSON form and on the host\\0port form, and logs in there', async () => {
      const { a, b, dev, a1 } = await redirectedFromAToB()
      await dev.waitFor(new RegExp(`^REDIRECT i=0 host=127\\.0\\.0\\.1 port=${b.port}$`))
      await dev.waitFor(/^DISCONNECTED i=0 reason=redirect$/)
      await a1.closed
      const b1 = await b.nextConnection()
      const login = await b1.acceptLogin()
      expect(login.body.toString()).to.equal('tok-1')
      await dev.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${b.port}$`))
      await dev.command('server 0 {"at":"b"}', /^SENT i=0 id=1$/)
      expect((await b1.nextOfType(Cmd.JSON_MESSAGE)).body.toString()).to.contain('"at":"b"')

      // The older form: host, NUL, port digits.
      b1.write(
        frame(
          Cmd.REDIRECT,
          4,
          Buffer.concat([Buffer.from(LOCAL), Buffer.from([0]), Buffer.from(String(a.port))]),
        ),
      )
      await dev.waitFor(new RegExp(`^REDIRECT i=0 host=127\\.0\\.0\\.1 port=${a.port}$`))
      const a2 = await a.nextConnection()
      await a2.acceptLogin()
      await dev.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${a.port}$`))
    })

    it('keeps to the REDIRECT target when the sketch calls connect() again with the same arguments', async () => {
      // The original's example calls connect(token, home, port) whenever run() returns false, which
      // it does while the device moves to the new server.
      const { b, dev } = await redirectedFromAToB()
      const b1 = await b.nextConnection()
      await b1.nextOfType(Cmd.LOGIN)
      const result = dev.command('connect 0', /^CONNECT_RESULT i=0 ok=(\d)$/)
      b1.write(frame(Cmd.RESPONSE, 1, Buffer.from([200])))
      expect((await result)[1]).to.equal('1')
      await dev.command('state 0', new RegExp(`^STATE i=0 state=authenticated .* port=${b.port}$`))
      await dev.command('server 0 {"at":"b"}', /^SENT i=0 id=1$/)
      expect((await b1.nextOfType(Cmd.JSON_MESSAGE)).body.toString()).to.contain('"at":"b"')
    })

    it('follows a REDIRECT sent instead of a login reply [HT-6.4], and ignores a malformed one', async () => {
      const a = await startPeer()
      const b = await startPeer()
      const dev = startDevice({ connect: [`${LOCAL}:${a.port}:tok-1`] })
      const a1 = await a.nextConnection()
      await a1.nextOfType(Cmd.LOGIN)
      a1.write(frame(Cmd.REDIRECT, 1, `{"server":"${LOCAL}","port":${b.port}}`))
      const b1 = await b.nextConnection()
      await b1.acceptLogin()
      await dev.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${b.port}$`))

      for (const body of ['{"server":5,"port":1}', '{"server":"h","port":70000}', 'h\u0000x'])
        b1.write(frame(Cmd.REDIRECT, 2, body))
      for (let k = 0; k < 3; k++) await dev.waitFor(/^DROP i=0 type=41 id=2 len=\d+ reason=malformed$/)
      await dev.command('server 0 {}', /^SENT i=0 id=1$/)
      await b1.nextOfType(Cmd.JSON_MESSAGE)
    })
  })

  describe('connection health', () => {
    it('detects a dead server (no bytes after login) with the heartbeat timeout, and reconnects', async () => {
      const peer = await startPeer()
      const dev = startDevice({
        connect: [`${LOCAL}:${peer.port}:tok-1`],
        keepalive: 200,
        heartbeatTimeout: 300,
        backoff: [20, 40],
      })
      const dead = await peer.nextConnection()
      await dead.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
      // The device probes with PING, gets nothing back, gives up.
      await dead.nextOfType(Cmd.PING)
      await dev.waitFor(/^DISCONNECTED i=0 reason=heartbeat_timeout$/)
      await dead.closed
      const next = await peer.nextConnection()
      await next.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
    })

    it('keeps a keepalive timer per instance, across the millis() wrap', async () => {
      const a = await startPeer()
      const b = await startPeer()
      const dev = startDevice({
        connect: [`${LOCAL}:${a.port}:tok-a`, `${LOCAL}:${b.port}:tok-b`],
        keepalive: 100,
        heartbeatTimeout: 2000,
        // millis() starts 600 ms before its 32-bit wrap (49.7 days on a board).
        env: { HYPERTCP_HOST_MILLIS_START: String(2 ** 32 - 600) },
      })
      const [ca, cb] = [await a.nextConnection(), await b.nextConnection()]
      await Promise.all([ca.acceptLogin(), cb.acceptLogin()])
      // Each instance pings its own server, answered like a gateway does.
      // (The original kept one `static` timer for all instances: the second
      // instance never pinged.)
      const answerPings = async (c: PeerConnection) => {
        for (let k = 0; k < 12; k++) {
          const ping = await c.nextOfType(Cmd.PING)
          c.write(frame(Cmd.RESPONSE, ping.id))
        }
      }
      await Promise.all([answerPings(ca), answerPings(cb)])
      expect(dev.all(/^DISCONNECTED/)).to.deep.equal([])
    })

    it('reconnects with backoff while the server is down, and carries on when it is back', async () => {
      // A port with nothing listening on it (yet).
      const probe = net.createServer()
      await new Promise<void>((r) => probe.listen(0, LOCAL, () => r()))
      const port = (probe.address() as net.AddressInfo).port
      await new Promise<void>((r) => probe.close(() => r()))

      const dev = startDevice({ connect: [`${LOCAL}:${port}:tok-1`], backoff: [20, 80] })
      for (let k = 0; k < 3; k++) await dev.waitFor(/^DISCONNECTED i=0 reason=connect_failed$/)

      // The server comes (back) up on the same port.
      const peer = await ScriptedPeer.start(port)
      cleanups.push(() => peer.close())
      const first = await peer.nextConnection()
      await first.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
      await dev.command('server 0 {"n":1}', /^SENT i=0 id=1$/)

      // It drops the connection: the device logs in again, and its msg_ids
      // start over at 1 [HT-2.3].
      first.destroy()
      await dev.waitFor(/^DISCONNECTED i=0 reason=closed$/)
      const second = await peer.nextConnection()
      await second.acceptLogin()
      await dev.waitFor(/^LOGIN_OK i=0/)
      await dev.command('server 0 {"n":2}', /^SENT i=0 id=1$/)
      expect((await second.nextOfType(Cmd.JSON_MESSAGE)).body.toString()).to.contain('"n":2')
    })

    it('disconnect() stops reconnecting; connect() starts again', async () => {
      const { peer, dev, conn } = await online({ backoff: [20, 40] })
      await dev.command('disconnect 0', /^OK disconnect$/)
      await dev.waitFor(/^DISCONNECTED i=0 reason=user$/)
      await conn.closed
      await dev.command('state 0', /^STATE i=0 state=disconnected retrying=0 attempts=1 /)
      const result = dev.command('connect 0', /^CONNECT_RESULT i=0 ok=(\d)$/)
      const again = await peer.nextConnection()
      await again.acceptLogin()
      expect((await result)[1]).to.equal('1')
    })
  })

  it('builds and runs the console example', async () => {
    const peer = await startPeer()
    const app = DeviceProcess.run(firmware().console, [LOCAL, String(peer.port), 'tok-1'])
    cleanups.push(() => app.stop())
    const conn = await peer.nextConnection()
    await conn.acceptLogin()
    await app.waitFor(/^Connected to 127\.0\.0\.1:\d+$/)
    const hello = await conn.nextOfType(Cmd.JSON_MESSAGE)
    expect(JSON.parse(hello.body.toString())).to.deep.equal({
      targetId: 'server',
      payload: { status: 'online' },
    })
    conn.write(bytes('downlink'))
    await app.waitFor(/^Message from server: \{"command":"control",/)
    app.send('{"temperature": 21.5}')
    await app.waitFor(/^Sent$/)
    const typed = await conn.nextOfType(Cmd.JSON_MESSAGE)
    expect(JSON.parse(typed.body.toString())).to.deep.equal({
      targetId: 'server',
      payload: { temperature: 21.5 },
    })
  })
})
