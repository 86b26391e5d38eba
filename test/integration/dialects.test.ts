/**
 * The three ways in, side by side in one gateway: a HyperTCP device, a Blynk device and a device
 * the gateway dials (lines) — the same topics, presence, metrics and admin API, and messages
 * between them through the broker.
 */
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { expect } from 'chai'
import { Status } from '../../src/protocol/constants.js'
import { useCleanups } from '../helpers/cleanups.js'
import { DEVICES, PEER_GATEWAY, startGateway } from '../helpers/gateway.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

const HW_LOGIN = 29
const HARDWARE = 20

describe('dialects side by side: HyperTCP, Blynk and a dialed device in one gateway', function () {
  this.timeout(15000)
  const cleanups = useCleanups()
  const { track } = trackRawClients()

  it('share topics, presence, metrics and the admin API, and reach one another', async () => {
    const received = new Inbox<string>('lines the dialed device read')
    const meter = createServer((socket: Socket) => socket.on('data', (d) => received.push(d.toString())))
    await new Promise<void>((resolve) => meter.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => meter.close(resolve)))
    const meterPort = (meter.address() as AddressInfo).port
    const gw = await startGateway({
      blynkPort: 0,
      adminPort: 0,
      devices: [...DEVICES, { id: 'lamp-1', token: 'lamp-token' }],
      dialOut: [{ id: 'meter-1', host: '127.0.0.1', port: meterPort, framing: 'lines' }],
    })
    cleanups.push(() => gw.close())
    const w = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/+/up', 'hypertcp/+/status'], PEER_GATEWAY)
    cleanups.push(() => w.end())

    const hyper = await OriginalDevice.connect(gw.port, 'tok-1', { pingIntervalMs: 0 })
    cleanups.push(() => hyper.close())
    const lamp = await track(RawClient.connect(gw.blynkPort!))
    lamp.sendFrame(HW_LOGIN, 1, Buffer.from('lamp-token'))
    expect(await lamp.response(1)).to.equal(Status.SUCCESS)
    await waitUntil(() => gw.stats().online === 3, 'all three online')

    // Presence, one shape for all.
    const presence = new Map<string, Record<string, unknown>>()
    for (const id of ['dev-1', 'lamp-1', 'meter-1']) presence.set(id, await w.json(`hypertcp/${id}/status`))
    expect(presence.get('dev-1')).to.not.have.property('dialect')
    expect(presence.get('lamp-1')).to.deep.include({ online: true, dialect: 'blynk' })
    expect(presence.get('meter-1')).to.deep.include({ online: true, dialect: 'lines', dialOut: true })

    // The HyperTCP device reaches both others; each gets it in its own dialect.
    hyper.sendMessage('lamp-1', { pin: 'V2', value: 'on' })
    const hw = await lamp.frames.take((f) => f.type === HARDWARE, 5000, 'the pin write')
    expect(hw.text).to.equal('vw\u00002\u0000on')
    hyper.sendMessage('meter-1', 'MEASURE')
    expect(await received.take(() => true, 5000, 'the line')).to.equal('MEASURE\n')

    // Their uplinks, each on its own up topic.
    lamp.sendFrame(HARDWARE, 2, Buffer.from('vw\u00000\u00001'))
    expect(await w.json('hypertcp/lamp-1/up')).to.deep.equal({ pin: 'V0', value: '1' })
    hyper.sendToServer({ t: 1 })
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ t: 1 })

    // One admin API and one set of metrics.
    const api = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/devices`)).json()) as {
      devices: { id: string; dialect: string }[]
    }
    expect(api.devices.map((d) => [d.id, d.dialect])).to.deep.equal([
      ['dev-1', 'hypertcp'],
      ['lamp-1', 'blynk'],
      ['meter-1', 'lines'],
    ])
    const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
    for (const d of ['hypertcp', 'blynk', 'lines'])
      expect(metrics).to.include(`hypertcp_devices_connected_by_dialect{dialect="${d}"} 1`)
    expect(metrics).to.include('hypertcp_devices_connected 3')
    // Kicking each through the admin API works whatever its dialect.
    for (const id of ['lamp-1', 'meter-1']) {
      const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/devices/${id}`, { method: 'DELETE' })
      expect(res.status).to.equal(204)
      expect(await w.json(`hypertcp/${id}/status`, (p: { online: boolean }) => !p.online)).to.deep.include({
        reason: 'kicked',
      })
    }
  })
})
