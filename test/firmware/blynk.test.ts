/**
 * Blynk devices, unchanged: a sketch of the project's own (firmware/host/blynk/blynk_device.cpp)
 * built against the Blynk library 1.4.0 as published (../shared/vendor), the way its linux/
 * directory builds its client, against the gateway's Blynk listener: login, uplinks, downlinks,
 * presence with the device's info, a kick and the library's reconnect, a wrong token.
 */
import { expect } from 'chai'
import type { Gateway } from '../../src/index.js'
import { useCleanups } from '../helpers/cleanups.js'
import { DEVICES, suiteGateways } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { DeviceProcess } from './support/device.js'
import { blynkDevice, requireVendor } from './support/vendor.js'

const TOKEN = 'Qx3kBlynkTokenOfThirtyTwoChars00'
const REGISTRY = [...DEVICES, { id: 'blynk-1', token: TOKEN }]

type Presence = {
  online: boolean
  reason?: string
  dialect?: string
  info?: Record<string, string>
}

describe('a Blynk device (the Blynk library 1.4.0, unchanged) through the Blynk listener', function () {
  this.timeout(30000)
  requireVendor()

  let program: string
  before(async function () {
    this.timeout(120000)
    program = await blynkDevice()
  })

  const cleanups = useCleanups()
  const { gateway, watch } = suiteGateways(cleanups, { blynkPort: 0, devices: REGISTRY })

  function device(gw: Gateway, token = TOKEN, everyMs = 200): DeviceProcess {
    const d = DeviceProcess.run(
      program,
      [`--token=${token}`, '--server=127.0.0.1', `--port=${gw.blynkPort}`],
      { BLYNK_V0_MS: String(everyMs) },
    )
    cleanups.push(() => d.stop())
    return d
  }

  it('logs in, is announced online with its info, and its V0 writes reach hypertcp/<id>/up', async () => {
    const gw = await gateway()
    const w = await watch(gw, 'hypertcp/blynk-1/up', 'hypertcp/blynk-1/status')
    const dev = device(gw)
    await dev.waitFor(/^connected$/)
    const presence = await w.json<Presence>('hypertcp/blynk-1/status', (p) => p.info !== undefined)
    expect(presence).to.deep.include({ online: true, dialect: 'blynk' })
    // What the library's sendInfo() says on Linux (BlynkApiLinux.h, BlynkConfig.h).
    expect(presence.info).to.deep.include({ ver: '1.4.0', dev: 'Linux', 'h-beat': '40', 'buff-in': '4096' })
    const first = await w.json<{ pin: string; value: string }>('hypertcp/blynk-1/up')
    expect(first.pin).to.equal('V0')
    const second = await w.json<{ pin: string; value: string }>('hypertcp/blynk-1/up')
    expect(Number(second.value)).to.equal(Number(first.value) + 1)
    expect(gw.stats().onlineByDialect).to.deep.equal({ blynk: 1 })
  })

  it('runs BLYNK_WRITE for pin writes on its down topic, one or several, with several values', async () => {
    const gw = await gateway()
    const w = await watch(gw)
    const dev = device(gw)
    await dev.waitFor(/^connected$/)
    await w.publish('hypertcp/blynk-1/dn', '{"pin":"V1","value":"hello"}')
    expect((await dev.waitFor(/^write V(\d+): (.*)$/)).slice(1)).to.deep.equal(['1', '[hello]'])
    await w.publish('hypertcp/blynk-1/dn', '[{"pin":"V2","value":["a",2,true]},{"pin":7,"value":3.5}]')
    expect((await dev.waitFor(/^write V(\d+): (.*)$/)).slice(1)).to.deep.equal(['2', '[a] [2] [1]'])
    expect((await dev.waitFor(/^write V(\d+): (.*)$/)).slice(1)).to.deep.equal(['7', '[3.5]'])
    // Not a pin write: refused and counted; the device stays connected and gets the next one.
    await w.publish('hypertcp/blynk-1/dn', '{"temperature":21}')
    await waitUntil(() => gw.stats().droppedBy.unsupported === 1, 'the refusal counted')
    await w.publish('hypertcp/blynk-1/dn', '{"from":"app-7","payload":{"pin":"V1","value":"after"}}')
    expect((await dev.waitFor(/^write V(\d+): (.*)$/)).slice(1)).to.deep.equal(['1', '[after]'])
    expect(dev.all(/^disconnected$/)).to.have.length(0)
  })

  it('gets messages from HyperTCP devices on the same gateway (device to device)', async () => {
    const gw = await gateway()
    const dev = device(gw)
    await dev.waitFor(/^connected$/)
    const hyper = await OriginalDevice.connect(gw.port, 'tok-1', { pingIntervalMs: 0 })
    cleanups.push(() => hyper.close())
    hyper.sendMessage('blynk-1', { pin: 'V3', value: 'from dev-1' })
    expect((await dev.waitFor(/^write V(\d+): (.*)$/)).slice(1)).to.deep.equal(['3', '[from dev-1]'])
    expect(gw.stats().onlineByDialect).to.deep.equal({ blynk: 1, hypertcp: 1 })
  })

  it('is kicked through its control topic, and the library logs in again by itself', async () => {
    const gw = await gateway()
    const w = await watch(gw, 'hypertcp/blynk-1/status')
    const dev = device(gw)
    await dev.waitFor(/^connected$/)
    await w.json<Presence>('hypertcp/blynk-1/status', (p) => p.online)
    await w.publish('hypertcp/blynk-1/ctl', '{"action":"kick"}')
    expect(await w.json<Presence>('hypertcp/blynk-1/status', (p) => !p.online)).to.deep.include({
      reason: 'kicked',
    })
    // Its next write fails on the closed connection; it reconnects (after its 5 s pause).
    await dev.waitFor(/^disconnected$/, 10000)
    await dev.waitFor(/^connected$/, 15000)
    await w.json<Presence>('hypertcp/blynk-1/status', (p) => p.online, 5000)
    expect(gw.stats().loginResults.ok).to.equal(2)
  })

  it('gives up on a wrong token, as Blynk devices do', async () => {
    const gw = await gateway()
    const dev = device(gw, 'NotTheTokenOfAnyDeviceHere000000')
    await dev.waitFor(/Invalid auth token/)
    await dev.waitFor(/^token invalid: giving up$/)
    await dev.finish()
    expect(gw.stats().loginResults).to.deep.equal({ invalid_token: 1 })
  })
})
