import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd } from '../../src/protocol/constants.js'
import { aedesBroker, type BrokerKind, mosquittoBroker, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RawClient } from '../helpers/raw-client.js'

type Presence = { online: boolean; at: number; gateway?: string; reason?: string }

/** [HT-6.3] Several instances on one broker, with no coordination but the broker. */
for (const broker of [aedesBroker(), mosquittoBroker((ctx) => requireMosquitto(ctx))] as BrokerKind[]) {
  describe(`two gateway instances on one broker: ${broker.name}`, () => {
    let gw1: Gateway
    let gw2: Gateway
    const devices: OriginalDevice[] = []

    before(async function () {
      await broker.setup(this)
      gw1 = await startGateway({ ...broker.options(), gatewayId: 'gw-one' })
      // The second spreads its devices over three broker connections (mqttConnections).
      gw2 = await startGateway({ ...broker.options(gw1), gatewayId: 'gw-two', mqttConnections: 3 })
      expect(gw2.mqttUrl).to.equal(gw1.mqttUrl)
    })
    after(async () => {
      await gw2?.close()
      await gw1?.close()
      await broker.teardown()
    })
    afterEach(async () => {
      for (const d of devices.splice(0)) {
        d.destroy()
        await d.closed
      }
    })

    async function device(gw: Gateway, token: string): Promise<OriginalDevice> {
      const d = await OriginalDevice.connect(gw.port, token, { pingIntervalMs: 0 })
      devices.push(d)
      expect(d.loginStatus).to.equal(200)
      return d
    }

    it('delivers device A on gateway 1 to device B on gateway 2, and back [HT-4.4]', async () => {
      const a = await device(gw1, 'tok-1')
      const b = await device(gw2, 'tok-2')
      a.sendMessage('dev-2', { hello: 'from gw-one' })
      expect(await b.events.take((e) => e.kind === 'message')).to.deep.include({
        from: 'dev-1',
        payload: { hello: 'from gw-one' },
      })
      b.sendMessage('dev-1', { hello: 'from gw-two' })
      expect(await a.events.take((e) => e.kind === 'message')).to.deep.include({
        from: 'dev-2',
        payload: { hello: 'from gw-two' },
      })
    })

    it('broadcasts to devices on both instances, not to the sender [HT-5.3]', async () => {
      const a = await device(gw1, 'tok-1')
      const b = await device(gw2, 'tok-2')
      const c = await device(gw1, 'tok-3')
      const d = await device(gw2, 'tok-4')
      a.broadcastMessage({ notification: 'everyone' })
      for (const x of [b, c, d]) {
        expect(await x.events.take((e) => e.kind === 'broadcast')).to.deep.include({
          from: 'dev-1',
          payload: { notification: 'everyone' },
        })
      }
      const w = await MqttWatcher.connect(gw1.mqttUrl)
      try {
        await w.publish('hypertcp/dev-1/dn', '{"sentinel":1}')
        expect(await a.events.take((e) => e.kind === 'message' || e.kind === 'broadcast')).to.deep.include({
          kind: 'message',
          payload: { sentinel: 1 },
        })
      } finally {
        await w.end()
      }
    })

    it('closes the older connection when the device logs in on the other instance [HT-3.3]', async () => {
      const w = await MqttWatcher.connect(gw1.mqttUrl, ['hypertcp/dev-3/status'])
      try {
        const first = await device(gw1, 'tok-3')
        const since = Date.now()
        const takeovers = gw1.stats().closes.takeover ?? 0
        const second = await device(gw2, 'tok-3')
        await first.closed
        expect(gw1.stats().closes.takeover).to.equal(takeovers + 1)
        // The retained state is the new connection's, on gateway 2.
        await w.json<Presence>(
          'hypertcp/dev-3/status',
          (p) => p.online && p.at >= since && p.gateway === 'gw-two',
        )
        const late = await MqttWatcher.connect(gw1.mqttUrl, ['hypertcp/dev-3/status'])
        try {
          expect(await late.json<Presence>('hypertcp/dev-3/status', (p) => p.at >= since)).to.deep.include({
            online: true,
            gateway: 'gw-two',
          })
        } finally {
          await late.end()
        }
        // Downlinks now reach the device on gateway 2 only.
        await w.publish('hypertcp/dev-3/dn', '{"where":"gw-two"}')
        expect(await second.events.take((e) => e.kind === 'message')).to.deep.include({
          payload: { where: 'gw-two' },
        })
        await waitUntil(() => gw1.stats().online === 0, 'gateway 1 has let go of the device')
      } finally {
        await w.end()
      }
    })

    it('redirects a device to the other instance via the control topic [HT-5.5]', async () => {
      const c = await RawClient.connect(gw1.port)
      const w = await MqttWatcher.connect(gw1.mqttUrl, [], broker.admin)
      try {
        expect(await c.login('tok-4')).to.equal(200)
        gw1.reload({ ...gw1.config, redirectAllow: [`127.0.0.1:${gw2.port}`] })
        await w.publish(
          'hypertcp/dev-4/ctl',
          JSON.stringify({ action: 'redirect', server: '127.0.0.1', port: gw2.port }),
        )
        const f = await c.frames.take((x) => x.type === Cmd.REDIRECT)
        const target = JSON.parse(f.text) as { server: string; port: number }
        expect(target).to.deep.equal({ server: '127.0.0.1', port: gw2.port })
        await c.waitClosed()
        // The device follows the redirect and is served there.
        const moved = await OriginalDevice.connect(target.port, 'tok-4', { pingIntervalMs: 0 })
        devices.push(moved)
        expect(moved.loginStatus).to.equal(200)
        await w.publish('hypertcp/dev-4/dn', '{"on":"gw-two"}')
        expect(await moved.events.take((e) => e.kind === 'message')).to.deep.include({
          payload: { on: 'gw-two' },
        })
      } finally {
        c.destroy()
        await w.end()
      }
    })
  })
}
