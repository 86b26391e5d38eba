/**
 * The original HyperTCPProtocol.h (../shared/vendor/hyper-tcp-ab3c359),
 * unchanged, built for Linux with the project's Arduino shim and ArduinoJson 6
 * and 7, against the real gateway: what every field device runs. And what it
 * does when the gateway closes its connection, next to the project's firmware.
 */
import { expect } from 'chai'
import type { Gateway, GatewayOptions } from '../../src/index.js'
import { useCleanups } from '../helpers/cleanups.js'
import { BROKER_ADMIN, DEVICES, PEER_GATEWAY, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { DeviceProcess } from './support/device.js'
import {
  ARDUINOJSON,
  missing32,
  originalDevice32,
  requireVendor,
  type VendorPrograms,
  vendorPrograms,
} from './support/vendor.js'

const LOCAL = '127.0.0.1'

type Presence = { online: boolean; reason?: string }

describe('the original header, unchanged, against the gateway', function () {
  this.timeout(30000)
  requireVendor()

  for (const aj of ARDUINOJSON) {
    describe(`with ArduinoJson ${aj}`, () => {
      let programs: VendorPrograms
      before(async function () {
        this.timeout(240000)
        programs = await vendorPrograms(aj)
      })

      const cleanups = useCleanups()

      async function gateway(options: GatewayOptions = {}): Promise<Gateway> {
        const gw = await startGateway(options)
        cleanups.push(() => gw.close()) // idempotent: a test may have closed it
        return gw
      }

      async function watch(gw: Gateway, ...topics: string[]): Promise<MqttWatcher> {
        const w = await MqttWatcher.connect(gw.mqttUrl, topics, PEER_GATEWAY)
        cleanups.push(() => w.end())
        return w
      }

      /** The original device: connect() once (it prints CONNECT_RESULT), then run() from its loop. */
      function original(gw: Gateway | number, token: string): DeviceProcess {
        const port = typeof gw === 'number' ? gw : gw.port
        const d = DeviceProcess.run(programs.original.output, [LOCAL, String(port), token])
        cleanups.push(() => d.stop())
        return d
      }

      async function online(gw: Gateway, token: string): Promise<DeviceProcess> {
        const d = original(gw, token)
        await d.waitFor(/^CONNECT_RESULT ok=1$/)
        await d.waitFor(/^RUN value=1$/)
        return d
      }

      it('logs in, is announced online, and its uplinks reach hypertcp/<id>/up', async () => {
        const gw = await gateway()
        const w = await watch(gw, 'hypertcp/dev-1/up', 'hypertcp/dev-1/status')
        const dev = await online(gw, 'tok-1')
        await w.json<Presence>('hypertcp/dev-1/status', (p) => p.online)
        await dev.command('server {"temperature":25.6}', /^SENT ok=1 id=1$/)
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ temperature: 25.6 })
        await dev.command('text server {"n":2}', /^SENT ok=1 id=2$/)
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ n: 2 })
        await waitUntil(() => gw.stats().published === 2, 'both acknowledged')
      })

      it('receives downlinks, as a payload or an envelope', async () => {
        const gw = await gateway()
        const w = await watch(gw)
        const dev = await online(gw, 'tok-1')
        await waitUntil(() => gw.stats().online === 1, 'the device is online')
        await w.publish('hypertcp/dev-1/dn', '{"command":"control","device":"led","action":"on"}')
        const plain = await dev.waitFor(/^MSG from=(\S+) payload=(.*)$/)
        expect(plain[1]).to.equal('server')
        expect(JSON.parse(plain[2]!)).to.deep.equal({ command: 'control', device: 'led', action: 'on' })
        await w.publish('hypertcp/dev-1/dn', '{"from":"app-7","payload":{"value":1}}')
        const env = await dev.waitFor(/^MSG from=(\S+) payload=(.*)$/)
        expect([env[1], JSON.parse(env[2]!)]).to.deep.equal(['app-7', { value: 1 }])
        await waitUntil(() => gw.stats().deviceAcks >= 2, 'the device acknowledged both')
      })

      it('talks device to device and broadcasts to the others', async () => {
        const gw = await gateway()
        const one = await online(gw, 'tok-1')
        const two = await online(gw, 'tok-3')
        await waitUntil(() => gw.stats().online === 2, 'both are online')
        await one.command('send dev-3 {"command":"control","value":1}', /^SENT ok=1 id=1$/)
        const d2d = await two.waitFor(/^MSG from=(\S+) payload=(.*)$/)
        expect([d2d[1], JSON.parse(d2d[2]!)]).to.deep.equal(['dev-1', { command: 'control', value: 1 }])
        await one.command('bcast {"notification":"System update available"}', /^SENT ok=1 id=2$/)
        const b = await two.waitFor(/^BCAST from=(\S+) payload=(.*)$/)
        expect([b[1], JSON.parse(b[2]!)]).to.deep.equal([
          'dev-1',
          { notification: 'System update available' },
        ])
      })

      it('gets a pong for a JSON ping, not published upstream', async () => {
        const gw = await gateway()
        const w = await watch(gw, 'hypertcp/dev-1/up')
        const dev = await online(gw, 'tok-1')
        await dev.command('server {"command":"ping","timestamp":1234567890}', /^SENT ok=1 id=1$/)
        const pong = await dev.waitFor(/^MSG from=server payload=(.*)$/)
        expect(JSON.parse(pong[1]!)).to.deep.equal({ command: 'pong', timestamp: 1234567890 })
        await dev.command('server {"sentinel":true}', /^SENT ok=1 id=2$/)
        expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ sentinel: true })
      })

      it('is refused with a wrong token: connect() returns false', async () => {
        const gw = await gateway()
        const dev = original(gw, 'not-a-token')
        await dev.waitFor(/^CONNECT_RESULT ok=0$/)
        await waitUntil(() => gw.stats().loginResults.invalid_token === 1, 'the refusal counted')
        expect(gw.stats().online).to.equal(0)
      })

      it('stays connected while idle past the keepalive: it answers the gateway PINGs', async () => {
        const gw = await gateway({ keepalive: 0.5 })
        const w = await watch(gw)
        const dev = await online(gw, 'tok-1')
        const start = gw.stats().framesOut
        await waitUntil(() => gw.stats().framesOut - start >= 6, 'the gateway has sent six PINGs', 10_000)
        await w.publish('hypertcp/dev-1/dn', '{"alive":true}')
        await dev.waitFor(/^MSG from=server payload=\{"alive":true\}$/)
        expect(gw.stats().closes).to.deep.equal({})
      })

      it('after the gateway restarts: the original stays offline (run() still true); the firmware logs in again', async () => {
        const first = await gateway()
        const port = first.port
        const unchanged = await online(first, 'tok-1')
        const ours = DeviceProcess.start(programs.device.output, {
          connect: [`${LOCAL}:${port}:tok-3`],
          backoff: [50, 100],
        })
        cleanups.push(() => ours.stop())
        await ours.waitFor(/^LOGIN_OK i=0/)

        await first.close()
        await ours.waitFor(/^DISCONNECTED i=0 reason=closed$/)
        const second = await gateway({ port })
        await ours.waitFor(/^LOGIN_OK i=0/)

        // The original never noticed: run() returns true on a closed socket, so a sketch that calls
        // connect() when run() returns false (the original example) never does; its sends fail.
        await unchanged.command('state', /^STATE run=1 connected=0 state=3$/)
        await unchanged.command('server {"lost":true}', /^SENT ok=0 id=\d+$/)
        expect(unchanged.all(/^RUN value=0$/)).to.deep.equal([])
        expect(second.stats().connections).to.equal(1) // ours only

        // Only connect() from the sketch brings it back.
        await unchanged.command('connect', /^CONNECT_RESULT ok=1$/)
        await waitUntil(() => second.stats().online === 2, 'both are online')
      })

      it('after a REDIRECT: the original goes silent; the firmware moves to the new gateway', async () => {
        const target = await gateway()
        const home = await gateway({ redirectAllow: [`${LOCAL}:${target.port}`] })
        const admin = await MqttWatcher.connect(home.mqttUrl, ['hypertcp/dev-1/status'], BROKER_ADMIN)
        cleanups.push(() => admin.end())
        const unchanged = await online(home, 'tok-1')
        const ours = DeviceProcess.start(programs.device.output, { connect: [`${LOCAL}:${home.port}:tok-3`] })
        cleanups.push(() => ours.stop())
        await ours.waitFor(/^LOGIN_OK i=0/)

        const redirect = JSON.stringify({ action: 'redirect', server: LOCAL, port: target.port })
        await admin.publish('hypertcp/dev-1/ctl', redirect)
        await admin.publish('hypertcp/dev-3/ctl', redirect)
        await ours.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${target.port}$`))
        await admin.json<Presence>('hypertcp/dev-1/status', (p) => !p.online && p.reason === 'redirected')

        // The original dropped the connection, pointed its transport at the target, and stopped:
        // nothing ever connects it there.
        await unchanged.command('state', /^STATE run=1 connected=0 state=1$/)
        expect(target.stats().connections).to.equal(1) // ours only
      })
    })
  }

  describe('with ArduinoJson 6 on a 32-bit build (the slots of an ESP32/ESP8266)', () => {
    // The README's table (bench/tools/original-limits.ts measures it): the original parses every
    // message into a 512-byte document, 16 bytes a slot, two of them for the envelope.
    const ACCEPTED = 30
    let binary: string
    before(async function () {
      this.timeout(120000)
      const missing = await missing32()
      if (missing) {
        if (process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${missing}`)
        console.log(`    32-bit tests skipped: ${missing}`)
        this.skip()
      }
      binary = (await originalDevice32()).output
    })
    const cleanups = useCleanups()

    const members = (n: number) =>
      JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, k])))

    it(`takes ${ACCEPTED} members and silently drops ${ACCEPTED + 1}; with maxDownlinkMembers the gateway drops it instead, counted`, async () => {
      const gw = await startGateway({
        devices: [...DEVICES, { id: 'aj6-1', token: 'tok-aj6', maxDownlinkMembers: ACCEPTED }],
      })
      cleanups.push(() => gw.close())
      const w = await MqttWatcher.connect(gw.mqttUrl, [], PEER_GATEWAY)
      cleanups.push(() => w.end())
      const start = (token: string) => {
        const d = DeviceProcess.run(binary, [LOCAL, String(gw.port), token])
        cleanups.push(() => d.stop())
        return d
      }
      const plain = start('tok-1')
      const limited = start('tok-aj6')
      await Promise.all([plain.waitFor(/^CONNECT_RESULT ok=1$/), limited.waitFor(/^CONNECT_RESULT ok=1$/)])
      await waitUntil(() => gw.stats().online === 2, 'both online')
      const next = async (d: DeviceProcess) =>
        JSON.parse((await d.waitFor(/^MSG from=server payload=(.*)$/))[1]!)

      // Without a limit: the gateway sends both, the device gets one (and acknowledges both).
      await w.publish('hypertcp/dev-1/dn', members(ACCEPTED))
      expect(Object.keys(await next(plain))).to.have.length(ACCEPTED)
      const delivered = gw.stats().delivered
      await w.publish('hypertcp/dev-1/dn', members(ACCEPTED + 1))
      await w.publish('hypertcp/dev-1/dn', '{"after":1}')
      expect(await next(plain)).to.deep.equal({ after: 1 })
      expect(gw.stats().delivered).to.equal(delivered + 2)

      // With maxDownlinkMembers: what the device would drop is not sent, and counted as dropped.
      const dropped = gw.stats().droppedBy.too_many_members ?? 0
      await w.publish('hypertcp/aj6-1/dn', members(ACCEPTED))
      expect(Object.keys(await next(limited))).to.have.length(ACCEPTED)
      await w.publish('hypertcp/aj6-1/dn', members(ACCEPTED + 1))
      await w.publish('hypertcp/aj6-1/dn', '{"after":2}')
      expect(await next(limited)).to.deep.equal({ after: 2 })
      expect(gw.stats().droppedBy.too_many_members).to.equal(dropped + 1)
    })
  })
})
