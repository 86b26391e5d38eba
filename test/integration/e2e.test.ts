import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { aedesBroker, type BrokerKind, mosquittoBroker, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RawClient } from '../helpers/raw-client.js'
import { bytes, vector } from '../helpers/vectors.js'

type Presence = { online: boolean; at: number; gateway?: string; reason?: string }

/** [HT-5.6] 77 both ways; 78 only towards devices. */
const CUSTOM_COMMANDS = [
  { type: 77, up: 'hypertcp/%c/raw/77', down: 'hypertcp/%c/raw/77/dn' },
  { type: 78, up: null, down: 'hypertcp/%c/raw/78/dn' },
]

for (const broker of [aedesBroker(), mosquittoBroker((ctx) => requireMosquitto(ctx))] as BrokerKind[]) {
  describe(`end to end, broker: ${broker.name}`, () => {
    let gw: Gateway
    const cleanups: (() => unknown)[] = []

    before(async function () {
      await broker.setup(this)
      gw = await startGateway({
        ...broker.options(),
        customCommands: CUSTOM_COMMANDS,
        redirectAllow: ['gw2.example.net:8080'],
      })
    })
    after(async () => {
      await gw?.close()
      await broker.teardown()
    })
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c()
    })

    async function device(
      token: string,
      options: { pingIntervalMs?: number; port?: number } = {},
    ): Promise<OriginalDevice> {
      const d = await OriginalDevice.connect(options.port ?? gw.port, token, {
        pingIntervalMs: options.pingIntervalMs ?? 0,
      })
      cleanups.push(async () => {
        d.destroy()
        await d.closed
      })
      expect(d.loginStatus, `login of ${token}`).to.equal(200)
      return d
    }
    async function raw(port = gw.port): Promise<RawClient> {
      const c = await RawClient.connect(port)
      cleanups.push(async () => {
        c.destroy()
        await c.closed
      })
      return c
    }
    async function watch(...topics: string[]): Promise<MqttWatcher> {
      const w = await MqttWatcher.connect(gw.mqttUrl, topics, broker.system)
      cleanups.push(() => w.end())
      return w
    }

    describe('login [HT-2.1] [HT-2.2] [HT-3.2]', () => {
      it('answers an unchanged device with RESPONSE(1, length 1, [200]) and announces it online, retained', async () => {
        const w = await watch('hypertcp/dev-1/status')
        const c = await raw()
        const since = Date.now()
        c.send(Buffer.concat([Buffer.from('1d00010005', 'hex'), Buffer.from('tok-1')]))
        await c.frames.take((f) => f.type === Cmd.RESPONSE)
        expect(c.received.toString('hex')).to.equal(vector('login_ok').hex)
        const online = await w.json<Presence>('hypertcp/dev-1/status', (p) => p.online && p.at >= since)
        expect(online).to.deep.include({ online: true, gateway: gw.config.gatewayId })
        const late = await watch('hypertcp/dev-1/status') // a later subscriber gets the retained state
        expect(await late.json<Presence>('hypertcp/dev-1/status')).to.deep.include({ online: true })
      })

      it('accepts the JSON form and honours an allowed device_id', async () => {
        const w = await watch('hypertcp/dev-2b/up')
        const c = await raw()
        expect(await c.login({ token: 'tok-2', device_id: 'dev-2b' })).to.equal(200)
        c.sendFrame(Cmd.JSON_MESSAGE, 1, { targetId: 'server', payload: { via: 'json-login' } })
        expect(await c.response(1)).to.equal(0)
        expect(await w.json('hypertcp/dev-2b/up')).to.deep.equal({ via: 'json-login' })
      })
    })

    describe('device → MQTT', () => {
      it('publishes the payload to hypertcp/<id>/up and acks with an empty RESPONSE [HT-4.2] [HT-4.5]', async () => {
        const w = await watch('hypertcp/dev-1/up')
        const c = await raw()
        expect(await c.login('tok-1')).to.equal(200)
        c.send(bytes('json_to_server')) // msg_id 1: the first message after login reuses 1 [HT-2.3]
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ temperature: 25.6 })
        await c.response(1)
        expect(c.received.subarray(6).toString('hex')).to.equal(vector('ack_ok').hex)
      })

      for (const [up, direct] of [
        [0, 2],
        [2, 0],
      ] as const) {
        it(`publishes in order at QoS ${up} to the server and QoS ${direct} to a device, each acked once out`, async () => {
          const qosGw = await startGateway({
            ...broker.options(),
            qos: { up, down: 1, direct, broadcast: 1, presence: 1 },
          })
          cleanups.push(() => qosGw.close())
          // Its own broker when standalone: watch that one.
          const w = await MqttWatcher.connect(
            qosGw.mqttUrl,
            ['hypertcp/dev-1/up', 'hypertcp/dev-2/dn'],
            broker.system,
          )
          cleanups.push(() => w.end())
          const c = await raw(qosGw.port)
          expect(await c.login('tok-1')).to.equal(200)
          const count = 60 // within the 16 in flight per device; alternating the two QoS levels
          for (let i = 1; i <= count; i++) {
            const targetId = i % 2 === 0 ? 'dev-2' : 'server'
            c.sendFrame(Cmd.JSON_MESSAGE, i + 1, { targetId, payload: { i } })
            if (i % 10 === 0) for (let k = i - 9; k <= i; k++) expect(await c.response(k + 1)).to.equal(0)
          }
          for (let i = 1; i <= count; i += 2) expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ i })
          for (let i = 2; i <= count; i += 2)
            expect(await w.json('hypertcp/dev-2/dn')).to.deep.equal({ from: 'dev-1', payload: { i } })
        })
      }

      it('routes device to device through the broker, as an envelope [HT-4.4]', async () => {
        const a = await device('tok-1')
        const b = await device('tok-2')
        const w = await watch('hypertcp/dev-2/dn')
        const id = a.sendMessage('dev-2', {
          command: 'control',
          device: 'relay_1',
          action: 'toggle',
          value: 1,
        })
        const got = await b.events.take((e) => e.kind === 'message')
        expect(got).to.deep.include({
          from: 'dev-1',
          payload: { command: 'control', device: 'relay_1', action: 'toggle', value: 1 },
        })
        expect(await w.json('hypertcp/dev-2/dn')).to.deep.equal({
          from: 'dev-1',
          payload: { command: 'control', device: 'relay_1', action: 'toggle', value: 1 },
        })
        expect(await a.events.take((e) => e.kind === 'response' && e.msgId === id)).to.deep.include({
          length: 0,
        })
      })

      it('broadcasts to every other device, and not back to the sender [HT-4.3] [HT-5.3]', async () => {
        const a = await device('tok-1')
        const b = await device('tok-2')
        const c = await device('tok-3')
        const w = await watch('hypertcp/broadcast')
        a.broadcastMessage({ notification: 'System update available' })
        for (const d of [b, c]) {
          expect(await d.events.take((e) => e.kind === 'broadcast')).to.deep.include({
            from: 'dev-1',
            payload: { notification: 'System update available' },
          })
        }
        expect(await w.json('hypertcp/broadcast')).to.deep.equal({
          from: 'dev-1',
          payload: { notification: 'System update available' },
        })
        // A JSON_MESSAGE to "broadcast" broadcasts too.
        b.sendMessage('broadcast', { n: 2 })
        expect(await a.events.take((e) => e.kind === 'broadcast')).to.deep.include({
          from: 'dev-2',
          payload: { n: 2 },
        })
        expect(await c.events.take((e) => e.kind === 'broadcast')).to.deep.include({
          from: 'dev-2',
          payload: { n: 2 },
        })
        // The sender got neither of its own: the next thing dev-1 receives is this downlink.
        await w.publish('hypertcp/dev-1/dn', '{"sentinel":true}')
        expect(await a.events.take((e) => e.kind === 'message' || e.kind === 'broadcast')).to.deep.include({
          kind: 'message',
          payload: { sentinel: true },
        })
      })

      it('answers a JSON ping in-band with a pong and publishes nothing [HT-3.5]', async () => {
        const w = await watch('hypertcp/dev-1/up')
        const d = await device('tok-1')
        const id = d.sendToServer({ command: 'ping', timestamp: 1234567890 })
        expect(await d.events.take((e) => e.kind === 'message')).to.deep.include({
          from: 'server',
          payload: { command: 'pong', timestamp: 1234567890 },
        })
        expect(await d.events.take((e) => e.kind === 'response' && e.msgId === id)).to.deep.include({
          length: 0,
        })
        d.sendToServer({ after: 'ping' })
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ after: 'ping' }) // the first up message
      })

      it('answers a device PING with RESPONSE(same id, 0) [HT-3.4]', async () => {
        const c = await raw()
        expect(await c.login('tok-1')).to.equal(200)
        c.send(bytes('device_ping'))
        await c.response(3)
        expect(c.received.subarray(6).toString('hex')).to.equal(vector('ping_reply').hex)
      })
    })

    describe('MQTT → device', () => {
      it('delivers a downlink as JSON_MESSAGE from server, with the gateway numbering from 1 [HT-5.2] [HT-1.5]', async () => {
        const c = await raw()
        const w = await watch()
        expect(await c.login('tok-1')).to.equal(200)
        await w.publish('hypertcp/dev-1/dn', '{"command":"control","device":"relay_1","action":"toggle"}')
        await c.frames.take((f) => f.type === Cmd.JSON_MESSAGE)
        expect(c.received.subarray(6).toString('hex')).to.equal(vector('downlink').hex)
        c.send(bytes('device_ack_of_downlink'))
        await waitUntil(() => gw.stats().deviceAcks > 0, 'the device ack is counted')
      })

      it('delivers an envelope as-is, and the original device acks and reads it [HT-2.5] [HT-2.6]', async () => {
        const d = await device('tok-1')
        const w = await watch()
        await w.publish('hypertcp/dev-1/dn', '{"from":"app-7","payload":{"x":1}}')
        const m = await d.events.take((e) => e.kind === 'message')
        expect(m).to.deep.include({ from: 'app-7', payload: { x: 1 } })
      })

      it('reaches every device from an MQTT client publishing on hypertcp/broadcast', async () => {
        const a = await device('tok-1')
        const b = await device('tok-2')
        const w = await watch()
        await w.publish('hypertcp/broadcast', '{"notice":"maintenance"}')
        for (const d of [a, b]) {
          expect(await d.events.take((e) => e.kind === 'broadcast')).to.deep.include({
            from: 'server',
            payload: { notice: 'maintenance' },
          })
        }
      })

      it('does not replay retained commands at login; delivers live messages whatever their retain flag', async () => {
        const w = await watch()
        await w.publish('hypertcp/dev-3/ctl', '{"action":"kick"}', true)
        await w.publish('hypertcp/dev-3/dn', '{"stale":"toggle"}', true)
        try {
          const d = await device('tok-3')
          await w.publish('hypertcp/dev-3/dn', '{"live":1}', true) // live, retain flag set
          expect(await d.events.take((e) => e.kind === 'message')).to.deep.include({ payload: { live: 1 } })
          d.sendToServer({ still: 'connected' })
          await d.events.take((e) => e.kind === 'response')
        } finally {
          // An empty retained message clears the retained state for later tests.
          for (const t of ['ctl', 'dn']) await w.publish(`hypertcp/dev-3/${t}`, '', true)
        }
      })

      it('keeps an unchanged device in sync after an error status in the length field [HT-2.7]', async () => {
        const d = await device('tok-1')
        const w = await watch()
        const bad = d.sendMessage('no/such+target', { x: 1 })
        expect(await d.events.take((e) => e.kind === 'response' && e.msgId === bad)).to.deep.include({
          length: 11,
        })
        await w.publish('hypertcp/dev-1/dn', '{"still":"in sync"}')
        expect(await d.events.take((e) => e.kind === 'message')).to.deep.include({
          payload: { still: 'in sync' },
        })
      })
    })

    describe('presence and control [HT-5.4] [HT-5.5]', () => {
      // Presence is retained: only states published after `since` belong to the test at hand.
      let since = 0
      beforeEach(() => {
        since = Date.now()
      })
      const isOnline = (p: Presence) => p.online && p.at >= since
      const isOffline = (p: Presence) => !p.online && p.at >= since

      it('publishes offline with the close reason, retained', async () => {
        const w = await watch('hypertcp/dev-3/status')
        const d = await device('tok-3')
        await w.json<Presence>('hypertcp/dev-3/status', isOnline)
        d.close()
        const off = await w.json<Presence>('hypertcp/dev-3/status', isOffline)
        expect(off).to.deep.include({ online: false, reason: 'client_closed', gateway: gw.config.gatewayId })
        const late = await watch('hypertcp/dev-3/status')
        expect(await late.json<Presence>('hypertcp/dev-3/status', (p) => p.at >= since)).to.deep.include({
          online: false,
          reason: 'client_closed',
        })
      })

      it('kicks a device on {"action":"kick"}', async () => {
        const w = await watch('hypertcp/dev-3/status')
        const d = await device('tok-3')
        await w.json<Presence>('hypertcp/dev-3/status', isOnline)
        await w.publish('hypertcp/dev-3/ctl', '{"action":"kick"}')
        await d.closed
        expect(await w.json<Presence>('hypertcp/dev-3/status', isOffline)).to.deep.include({
          reason: 'kicked',
        })
      })

      it('redirects a device with the JSON REDIRECT unchanged devices read, then closes [HT-2.8]', async () => {
        const w = await watch('hypertcp/dev-3/status')
        const c = await raw()
        expect(await c.login('tok-3')).to.equal(200)
        await w.json<Presence>('hypertcp/dev-3/status', isOnline)
        await w.publish('hypertcp/dev-3/ctl', '{"action":"redirect","server":"gw2.example.net","port":8080}')
        const f = await c.frames.take((x) => x.type === Cmd.REDIRECT)
        expect(f.text).to.equal(vector('redirect_json').frame.text)
        await c.waitClosed()
        expect(await w.json<Presence>('hypertcp/dev-3/status', isOffline)).to.deep.include({
          reason: 'redirected',
        })
      })

      it('refuses a redirect to a target not in redirectAllow (logged, counted): the device stays, its token with it', async () => {
        const c = await raw()
        expect(await c.login('tok-3')).to.equal(200)
        const before = gw.stats().controlRefused.redirect_not_allowed ?? 0
        const w = await watch()
        // The attack of issue 17: the device would have sent its token to the attacker's port.
        await w.publish(
          'hypertcp/dev-3/ctl',
          '{"action":"redirect","server":"attacker.example","port":19999}',
        )
        await w.publish('hypertcp/dev-3/ctl', '{"action":"redirect","server":"gw2.example.net","port":8081}')
        await waitUntil(
          () => gw.stats().controlRefused.redirect_not_allowed === before + 2,
          'both refusals counted',
        )
        c.sendFrame(Cmd.PING, 7)
        expect(await c.response(7)).to.equal(0)
        expect(c.frames.history.some((f) => f.type === Cmd.REDIRECT)).to.equal(false)
      })

      it('lets a second login of the same device take over; the retained state stays online [HT-3.3]', async () => {
        const w = await watch('hypertcp/dev-4/status')
        const first = await device('tok-4')
        await w.json<Presence>('hypertcp/dev-4/status', isOnline)
        since = Date.now()
        const second = await device('tok-4')
        await first.closed
        expect(await w.json<Presence>('hypertcp/dev-4/status', isOffline)).to.deep.include({
          reason: 'takeover',
        })
        await w.json<Presence>('hypertcp/dev-4/status', isOnline)
        const late = await watch('hypertcp/dev-4/status')
        expect(await late.json<Presence>('hypertcp/dev-4/status', (p) => p.at >= since)).to.deep.include({
          online: true,
        })
        const up = await watch('hypertcp/dev-4/up')
        second.sendToServer({ from: 'second' })
        expect(await up.json('hypertcp/dev-4/up')).to.deep.equal({ from: 'second' })
      })
    })

    describe('custom command types [HT-5.6]', () => {
      it('publishes a custom frame body verbatim, acks it once the broker has it, and sends raw downlinks as that type', async () => {
        const c = await raw()
        const w = await watch('hypertcp/dev-1/raw/77')
        expect(await c.login('tok-1')).to.equal(200)
        const up = Buffer.from([0x00, 0xff, 0x7b, 0x0a, 0x80, 0x22])
        c.sendFrame(77, 9, up)
        expect(await c.response(9)).to.equal(0)
        expect((await w.bytes('hypertcp/dev-1/raw/77')).toString('hex')).to.equal(up.toString('hex'))
        c.sendFrame(77, 10) // an empty body is a message too
        expect(await c.response(10)).to.equal(0)
        expect(await w.bytes('hypertcp/dev-1/raw/77')).to.have.length(0)

        const down = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef])
        await w.publish('hypertcp/dev-1/raw/77/dn', down)
        const f = await c.frames.take((x) => x.type === 77)
        expect(f.body.toString('hex')).to.equal(down.toString('hex'))
        expect(f.msgId).to.be.greaterThan(0)
      })

      it('refuses a type that only goes to devices and types not mapped; drops a raw downlink over the limit whole', async () => {
        const c = await raw()
        const w = await watch()
        expect(await c.login('tok-2')).to.equal(200)
        c.sendFrame(78, 1, Buffer.from([1]))
        expect(await c.response(1)).to.equal(Status.ILLEGAL_COMMAND)
        c.sendFrame(79, 2, Buffer.from([1]))
        expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND)
        const dropped = gw.stats().dropped
        await w.publish('hypertcp/dev-2/raw/78/dn', Buffer.alloc(gw.config.maxDownlinkSize + 1, 1))
        await w.publish('hypertcp/dev-2/raw/78/dn', Buffer.from('after'))
        const f = await c.frames.take((x) => x.type === 78)
        expect(f.text).to.equal('after') // the oversize one never reached the device, not even cut
        expect(gw.stats().dropped).to.equal(dropped + 1)
      })
    })

    describe('keepalive [HT-3.4]', () => {
      let fast: Gateway
      before(async () => {
        fast = await startGateway({ ...broker.options(gw), keepalive: 0.3 })
      })
      after(() => fast?.close())

      it('pings a silent device, which answers and stays connected', async () => {
        const d = await device('tok-1', { port: fast.port })
        await d.events.take((e) => e.kind === 'ping', 3000)
        await d.events.take((e) => e.kind === 'ping', 3000)
        const w = await watch('hypertcp/dev-1/up')
        d.sendToServer({ alive: true })
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ alive: true })
      })

      it('closes a device that does not answer, with reason keepalive_timeout', async () => {
        const since = Date.now()
        const w = await watch('hypertcp/dev-2/status')
        const c = await raw(fast.port)
        expect(await c.login('tok-2')).to.equal(200)
        const ping = await c.frames.take((f) => f.type === Cmd.PING, 3000)
        expect(ping.msgId).to.not.equal(0)
        await c.waitClosed(3000)
        expect(
          await w.json<Presence>('hypertcp/dev-2/status', (p) => !p.online && p.at >= since),
        ).to.deep.include({
          reason: 'keepalive_timeout',
        })
      })
    })
  })
}
