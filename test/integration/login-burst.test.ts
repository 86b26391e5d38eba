import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { aedesBroker, type BrokerKind, mosquittoBroker, startGateway } from '../helpers/gateway.js'
import { requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'

type Presence = { online: boolean; at: number }

const N = 60
const FLEET = Array.from({ length: N }, (_, i) => ({ id: `burst-${i}`, token: `burst-tok-${i}` }))

/**
 * Logins and logouts close together share their broker work (one SUBSCRIBE, one UNSUBSCRIBE per
 * flush): whatever the batching, each device must end up subscribed, announced and reachable.
 */
for (const broker of [aedesBroker(), mosquittoBroker((ctx) => requireMosquitto(ctx))] as BrokerKind[]) {
  describe(`a burst of logins and logouts, broker: ${broker.name}`, () => {
    let gw: Gateway
    let watcher: MqttWatcher
    let fleet: OriginalDevice[] = []

    before(async function () {
      await broker.setup(this)
      gw = await startGateway({ ...broker.options(), devices: FLEET })
      watcher = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/+/status'])
    })
    after(async () => {
      for (const d of fleet) d.destroy()
      await watcher?.end()
      await gw?.close()
      await broker.teardown()
    })

    const loginAll = () =>
      Promise.all(FLEET.map((d) => OriginalDevice.connect(gw.port, d.token, { pingIntervalMs: 0 })))

    /** A downlink to every device, published right after the logins: each must receive its own. */
    async function expectReachable(devices: OriginalDevice[]): Promise<void> {
      await Promise.all(FLEET.map((d, i) => watcher.publish(`hypertcp/${d.id}/dn`, JSON.stringify({ n: i }))))
      const got = await Promise.all(devices.map((d) => d.events.take((e) => e.kind === 'message')))
      expect(got.map((e) => (e.kind === 'message' ? e.payload : undefined))).to.deep.equal(
        FLEET.map((_, i) => ({ n: i })),
      )
    }

    it(`logs ${N} devices in at once: each answered 200, announced online and reachable`, async () => {
      const since = Date.now()
      fleet = await loginAll()
      expect(fleet.map((d) => d.loginStatus)).to.deep.equal(FLEET.map(() => 200))
      for (const d of FLEET) {
        await watcher.json<Presence>(`hypertcp/${d.id}/status`, (p) => p.online && p.at >= since)
      }
      await expectReachable(fleet)
      expect(gw.stats().online).to.equal(N)
    })

    it('takes them all offline at once, then back at once: still subscribed, each once', async () => {
      const since = Date.now()
      for (const d of fleet) d.destroy()
      await Promise.all(fleet.map((d) => d.closed))
      for (const d of FLEET) {
        await watcher.json<Presence>(`hypertcp/${d.id}/status`, (p) => !p.online && p.at >= since)
      }
      // Straight back: their UNSUBSCRIBEs may still be on the way when the SUBSCRIBEs are wanted.
      fleet = await loginAll()
      expect(fleet.map((d) => d.loginStatus)).to.deep.equal(FLEET.map(() => 200))
      await expectReachable(fleet)
      // Nothing delivered twice (a doubled subscription would): a second downlink on the same topic
      // leaves the broker after any copy of the first, so when it is there, any copy would be too.
      await Promise.all(FLEET.map((d) => watcher.publish(`hypertcp/${d.id}/dn`, '{"sentinel":true}')))
      for (const d of fleet) {
        await d.events.take((e) => e.kind === 'message' && JSON.stringify(e.payload) === '{"sentinel":true}')
        expect(d.events.pending().filter((e) => e.kind === 'message')).to.deep.equal([])
      }
    })
  })
}
