import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { BROKER_ADMIN, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'
import { bytes } from '../helpers/vectors.js'

/** Every bad-input path of the spec: the exact bytes the device gets, and the close reason. */
describe('bad input gets a specific answer, and disturbs nobody else', () => {
  let gw: Gateway
  let watcher: MqttWatcher
  const { track } = trackRawClients()

  before(async () => {
    gw = await startGateway({ loginTimeout: 0.4, maxFrameSize: 4096, maxDownlinkSize: 200 })
    watcher = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/+/up'], BROKER_ADMIN)
  })
  after(async () => {
    await watcher?.end()
    await gw?.close()
  })

  const client = () => track(RawClient.connect(gw.port))
  async function loggedIn(token = 'tok-1'): Promise<RawClient> {
    const c = await client()
    expect(await c.login(token)).to.equal(Status.SUCCESS)
    return c
  }
  const closes = (reason: string) => gw.stats().closes[reason] ?? 0

  /** The connection still works: a message is published and acked. */
  async function stillWorks(c: RawClient, msgId: number, deviceId = 'dev-1'): Promise<void> {
    c.sendFrame(Cmd.JSON_MESSAGE, msgId, { targetId: 'server', payload: { ok: msgId } })
    expect(await c.response(msgId)).to.equal(0)
    await watcher.json(`hypertcp/${deviceId}/up`, (p) => p.ok === msgId)
  }

  describe('before login [HT-3.1]', () => {
    it('answers a frame other than LOGIN/PING with RESPONSE(id, 5), no body, and closes', async () => {
      const before = closes('not_authenticated')
      const c = await client()
      c.send(bytes('json_to_server'))
      await c.waitClosed()
      expect(c.received.toString('hex')).to.equal('0000010005')
      expect(closes('not_authenticated')).to.equal(before + 1)
    })

    it('answers PING before login and stays open for the login', async () => {
      const c = await client()
      c.send(bytes('device_ping'))
      expect(await c.response(3)).to.equal(0)
      expect(await c.login('tok-1')).to.equal(200)
    })

    it('closes a connection that does not log in within loginTimeout', async () => {
      const before = closes('login_timeout')
      const c = await client()
      await c.waitClosed(3000)
      expect(c.received.length).to.equal(0)
      expect(closes('login_timeout')).to.equal(before + 1)
    })

    it('closes at the login timeout even if the device trickles bytes (slowloris)', async () => {
      const c = await client()
      const header = Buffer.from('1d00010005', 'hex')
      let i = 0
      const drip = setInterval(() => i < header.length && c.send(header.subarray(i, ++i)), 100)
      try {
        await c.waitClosed(3000)
      } finally {
        clearInterval(drip)
      }
    })
  })

  describe('login refused [HT-3.2]', () => {
    it('answers an unknown token with status 9 and closes', async () => {
      const before = closes('invalid_token')
      const c = await client()
      c.sendFrame(Cmd.LOGIN, 1, Buffer.from('wrong-token'))
      await c.waitClosed()
      expect(c.received.toString('hex')).to.equal('000001000109')
      expect(closes('invalid_token')).to.equal(before + 1)
    })

    it('answers a JSON login with a token it does not know with status 9', async () => {
      const c = await client()
      expect(await c.login({ token: 'nope', device_id: 'dev-1' })).to.equal(Status.INVALID_TOKEN)
      await c.waitClosed()
    })

    it('answers a claimed device_id the token does not allow with status 6 (NOT_ALLOWED) and closes', async () => {
      const before = closes('not_allowed')
      const c = await client()
      expect(await c.login({ token: 'tok-2', device_id: 'dev-1' })).to.equal(Status.NOT_ALLOWED)
      await c.waitClosed()
      expect(c.received.toString('hex')).to.equal('000001000106')
      expect(closes('not_allowed')).to.equal(before + 1)
    })

    it('answers a second LOGIN with ILLEGAL_COMMAND and keeps the first identity', async () => {
      const c = await loggedIn('tok-1')
      c.sendFrame(Cmd.LOGIN, 7, Buffer.from('tok-3'))
      expect(await c.response(7)).to.equal(Status.ILLEGAL_COMMAND)
      await stillWorks(c, 8, 'dev-1')
    })
  })

  describe('frames [HT-1.3] [HT-3.7]', () => {
    for (const phase of ['before', 'after'] as const) {
      it(`refuses an oversize header ${phase} login with RESPONSE(id, 11) and closes (frame_too_large)`, async () => {
        const before = closes('frame_too_large')
        const c = phase === 'before' ? await client() : await loggedIn()
        const already = c.received.length
        c.send(bytes('oversize_header')) // announces 60000 bytes; no body is ever sent
        await c.waitClosed()
        expect(c.received.subarray(already).toString('hex')).to.equal('000009000b')
        expect(closes('frame_too_large')).to.equal(before + 1)
      })
    }

    it('skips the body of an unknown command, answers ILLEGAL_COMMAND, and keeps framing', async () => {
      const c = await loggedIn()
      c.sendFrame(99, 4, Buffer.alloc(3000, 0x41)) // larger than the original device would skip
      expect(await c.response(4)).to.equal(Status.ILLEGAL_COMMAND)
      await stillWorks(c, 5)
    })

    it('answers a REDIRECT sent by a device with ILLEGAL_COMMAND', async () => {
      const c = await loggedIn()
      c.sendFrame(Cmd.REDIRECT, 4, { server: 'x', port: 1 })
      expect(await c.response(4)).to.equal(Status.ILLEGAL_COMMAND)
      await stillWorks(c, 5)
    })
  })

  describe('message bodies [HT-4.1]', () => {
    const cases: [string, Buffer | object][] = [
      ['not JSON', Buffer.from('hello')],
      ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])],
      ['a JSON array', [1, 2]],
      ['no targetId', { payload: {} }],
      ['a numeric targetId', { targetId: 7, payload: {} }],
      ['no payload', { targetId: 'server' }],
      ['an empty body', Buffer.alloc(0)],
      ['a targetId with a wildcard', { targetId: 'dev-+', payload: {} }],
      ['a targetId with a topic separator', { targetId: 'dev-2/up', payload: {} }],
      ['a targetId with #', { targetId: '#', payload: {} }],
      ['an empty targetId', { targetId: '', payload: {} }],
    ]
    for (const [what, body] of cases) {
      it(`answers ${what} with ILLEGAL_COMMAND_BODY in the length field, publishes nothing, stays connected`, async () => {
        const c = await loggedIn()
        const before = gw.stats().published
        c.sendFrame(Cmd.JSON_MESSAGE, 2, body)
        expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND_BODY)
        await stillWorks(c, 3) // and the next good message is the first thing published
        expect(gw.stats().published).to.equal(before + 1)
      })
    }

    it('refuses the same in a BROADCAST frame', async () => {
      const c = await loggedIn()
      c.sendFrame(Cmd.BROADCAST, 2, Buffer.from('{"targetId":"broadcast"'))
      expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    })
  })

  describe('downlinks that cannot be delivered [HT-5.2] [HT-2.6]', () => {
    for (const [what, message] of [
      ['is not JSON', 'plain text'],
      ['is over the downlink limit', JSON.stringify({ blob: 'x'.repeat(300) })],
      ['is invalid UTF-8', Buffer.from([0x22, 0xc3, 0x28, 0x22])],
    ] as const) {
      it(`drops a message that ${what}, counts it, and delivers the next`, async () => {
        const c = await loggedIn()
        const dropped = gw.stats().dropped
        await watcher.publish('hypertcp/dev-1/dn', message)
        await watcher.publish('hypertcp/dev-1/dn', '{"good":true}')
        const f = await c.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
        expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { good: true } })
        expect(gw.stats().dropped).to.equal(dropped + 1)
      })
    }

    it('ignores an invalid control message and keeps the device', async () => {
      const c = await loggedIn()
      await watcher.publish('hypertcp/dev-1/ctl', '{"action":"reboot"}')
      await watcher.publish('hypertcp/dev-1/ctl', '{"action":"redirect","server":"x"}')
      await watcher.publish('hypertcp/dev-1/dn', '{"after":"ctl"}')
      await c.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
      await stillWorks(c, 2)
    })
  })

  it('keeps serving a good device while others misbehave', async () => {
    const good = await loggedIn('tok-3')
    const bad = await Promise.all([client(), client(), loggedIn('tok-1')])
    bad[0]!.send(bytes('oversize_header'))
    bad[1]!.send(Buffer.from('garbage!'))
    bad[2]!.sendFrame(Cmd.JSON_MESSAGE, 2, Buffer.from('{'))
    for (let i = 1; i <= 5; i++) await stillWorks(good, i, 'dev-3')
  })
})

describe('broker unavailable [HT-4.5]', () => {
  let mosquitto: Mosquitto
  let gw: Gateway
  before(async function () {
    requireMosquitto(this)
    mosquitto = await Mosquitto.start()
    gw = await startGateway({ mqttUrl: mosquitto.url, maxPendingPublishes: 2, mqttReconnectPeriod: 0.1 })
  })
  after(async () => {
    await gw?.close()
    await mosquitto?.dispose()
  })

  it('never acks a message the broker has not accepted; past the buffer, answers SERVER_ERROR, in order', async () => {
    const c = await RawClient.connect(gw.port)
    try {
      expect(await c.login('tok-1')).to.equal(200)
      await mosquitto.stop() // kill -9
      await waitUntil(() => !gw.mqttConnected, 'the gateway notices the outage')
      expect(c.isClosed).to.equal(false)
      // Two messages fit in the buffer and wait for the broker; the third does not.
      for (const id of [1, 2, 3])
        c.sendFrame(Cmd.JSON_MESSAGE, id, { targetId: 'server', payload: { n: id } })
      const rejected = gw.stats().rejected
      await waitUntil(() => gw.stats().rejected > rejected, 'the third is refused')
      // Its refusal waits behind the answers owed for 1 and 2 (decision 22), which are not acked.
      expect(c.frames.pending().filter((f) => f.type === Cmd.RESPONSE)).to.deep.equal([])
      await mosquitto.run() // the broker comes back on the same port
      const answers = []
      for (let i = 0; i < 3; i++) {
        const f = await c.frames.take((x) => x.type === Cmd.RESPONSE, 10_000, 'an answer')
        answers.push([f.msgId, f.length])
      }
      expect(answers).to.deep.equal([
        [1, 0],
        [2, 0],
        [3, Status.SERVER_ERROR],
      ])
    } finally {
      c.destroy()
    }
  })

  it('refuses a login with SERVER_ERROR while the broker is down, and closes', async () => {
    await mosquitto.stop()
    await waitUntil(() => !gw.mqttConnected, 'the gateway notices the outage')
    const c = await RawClient.connect(gw.port)
    try {
      expect(await c.login('tok-2')).to.equal(Status.SERVER_ERROR)
      await c.waitClosed()
      expect(gw.stats().closes.broker_unavailable).to.equal(1)
    } finally {
      c.destroy()
      await mosquitto.run()
    }
  })
})
