/**
 * The Blynk dialect on the wire: the exact frames a Blynk device reads (answers with the status in
 * the length field, no body), its bad input, its info and the limits taken from it, redirects,
 * quotas, TLS, metrics and the admin API — with a test-controlled client. The real Blynk library is
 * driven in test/firmware/blynk.test.ts.
 */
import { expect } from 'chai'
import type { Gateway } from '../../src/index.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { makePki } from '../helpers/certs.js'
import { useCleanups } from '../helpers/cleanups.js'
import { DEVICES, suiteGateways } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { type Frame, RawClient, trackRawClients } from '../helpers/raw-client.js'

const HW_LOGIN = 29
const HARDWARE = 20
const INTERNAL = 17
const BRIDGE = 15
const HARDWARE_SYNC = 16
const PROPERTY = 19
const EVENT_LOG = 64
const ALREADY_REGISTERED = 4
const TOKEN = 'blynk-token-1'
const REGISTRY = [...DEVICES, { id: 'bl-1', token: TOKEN }]

/** A Blynk body: fields separated by NUL. */
const fields = (...f: (string | number)[]) => Buffer.from(f.join('\0'))

describe('Blynk dialect: frames, bad input, info, limits', function () {
  this.timeout(15000)
  const cleanups = useCleanups()
  const { gateway, watch } = suiteGateways(cleanups, { blynkPort: 0, devices: REGISTRY })
  const { track } = trackRawClients()

  /** Connects to the Blynk port and logs in as the library does (HW_LOGIN, msg_id 1, raw token). */
  async function loggedIn(gw: Gateway, token = TOKEN): Promise<RawClient> {
    const c = await track(RawClient.connect(gw.blynkPort!))
    c.sendFrame(HW_LOGIN, 1, Buffer.from(token))
    const reply = await c.frames.take(() => true, 5000, 'login reply')
    expect(reply).to.deep.include({ type: Cmd.RESPONSE, msgId: 1, length: Status.SUCCESS })
    await waitUntil(() => gw.stats().online === 1, 'online')
    return c
  }

  /** The next frame of any type. */
  const next = (c: RawClient, timeoutMs = 5000): Promise<Frame> =>
    c.frames.take(() => true, timeoutMs, 'a frame')

  it('answers the login with the status in the length field and no body', async () => {
    const gw = await gateway()
    const c = await track(RawClient.connect(gw.blynkPort!))
    c.sendFrame(HW_LOGIN, 1, Buffer.from(TOKEN))
    await next(c)
    expect(c.received.toString('hex')).to.equal('00000100c8') // RESPONSE, msg 1, 200
    const bad = await track(RawClient.connect(gw.blynkPort!))
    bad.sendFrame(HW_LOGIN, 1, Buffer.from('wrong'))
    await bad.waitClosed()
    expect(bad.received.toString('hex')).to.equal('0000010009') // INVALID_TOKEN, then closed
  })

  it('answers a second login ALREADY_REGISTERED, and a frame before login NOT_AUTHENTICATED', async () => {
    const gw = await gateway()
    const c = await loggedIn(gw)
    c.sendFrame(HW_LOGIN, 2, Buffer.from(TOKEN))
    expect(await c.response(2)).to.equal(ALREADY_REGISTERED)
    const early = await track(RawClient.connect(gw.blynkPort!))
    early.sendFrame(HARDWARE, 1, fields('vw', 0, 1))
    expect(await early.response(1)).to.equal(Status.NOT_AUTHENTICATED)
    await early.waitClosed()
    expect(c.isClosed).to.equal(false)
  })

  it('publishes pin writes, reads, properties and events; answers nothing that went well', async () => {
    const gw = await gateway()
    const w = await watch(gw, 'hypertcp/bl-1/up')
    const c = await loggedIn(gw)
    c.sendFrame(HARDWARE, 1, fields('vw', 0, 12))
    c.sendFrame(HARDWARE, 2, fields('dw', 13, 1))
    c.sendFrame(HARDWARE, 3, fields('aw', 4, 1023))
    c.sendFrame(HARDWARE, 4, fields('vw', 5, 'a', 'b'))
    c.sendFrame(HARDWARE, 5, fields('vr', 6))
    c.sendFrame(HARDWARE_SYNC, 6, fields('vr', 1, 2))
    c.sendFrame(PROPERTY, 7, fields(1, 'label', 'Pump'))
    c.sendFrame(EVENT_LOG, 8, fields('overheat', 'above 80 C'))
    c.sendFrame(HARDWARE, 9, fields('pm', 13, 'out')) // pin modes: nothing to publish
    const got = []
    for (let i = 0; i < 8; i++) got.push(await w.json('hypertcp/bl-1/up'))
    expect(got).to.deep.equal([
      { pin: 'V0', value: '12' },
      { pin: 'D13', value: '1' },
      { pin: 'A4', value: '1023' },
      { pin: 'V5', value: ['a', 'b'] },
      { pin: 'V6', read: true },
      { pin: ['V1', 'V2'], read: true },
      { pin: 'V1', property: 'label', value: 'Pump' },
      { event: 'overheat', description: 'above 80 C' },
    ])
    await waitUntil(() => gw.stats().published === 8, 'all eight acknowledged by the broker')
    // No answer for any of them: the first frame the device gets is the answer to its PING.
    c.sendFrame(Cmd.PING, 10)
    expect(await next(c)).to.deep.include({ type: Cmd.RESPONSE, msgId: 10, length: Status.SUCCESS })
  })

  it('refuses bad frames with the status a Blynk device expects, and stays connected', async () => {
    const gw = await gateway()
    const w = await watch(gw, 'hypertcp/bl-1/up')
    const c = await loggedIn(gw)
    c.sendFrame(HARDWARE, 1, fields('vw', 'x', 1)) // not a pin
    expect(await c.response(1)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    c.sendFrame(HARDWARE, 2, fields('vw', 3)) // no value
    expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    c.sendFrame(HARDWARE, 3, Buffer.from([0x76, 0x77, 0, 0x31, 0, 0xff, 0xfe])) // not UTF-8
    expect(await c.response(3)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    c.sendFrame(HARDWARE, 4, fields('zz', 1, 2)) // not a hardware command
    expect(await c.response(4)).to.equal(Status.ILLEGAL_COMMAND)
    c.sendFrame(BRIDGE, 5, fields('V64', 'i', 'other-token')) // not offered
    expect(await c.response(5)).to.equal(Status.ILLEGAL_COMMAND)
    c.sendFrame(99, 6, Buffer.from('??'))
    expect(await c.response(6)).to.equal(Status.ILLEGAL_COMMAND)
    c.sendFrame(HARDWARE, 7, fields('vw', 0, 'still here'))
    expect(await w.json('hypertcp/bl-1/up')).to.deep.equal({ pin: 'V0', value: 'still here' })
    expect(gw.stats().rejected).to.be.at.least(4)
    expect(c.isClosed).to.equal(false)
  })

  it('answers QUOTA_LIMIT past messageRate', async () => {
    const gw = await gateway({ messageRate: 1, messageBurst: 1 })
    const c = await loggedIn(gw)
    c.sendFrame(HARDWARE, 1, fields('vw', 0, 1))
    c.sendFrame(HARDWARE, 2, fields('vw', 0, 2))
    expect(await c.response(2)).to.equal(Status.QUOTA_LIMIT)
  })

  it('keeps the info it sends, shows it in presence and the admin API, and applies h-beat and buff-in', async () => {
    const gw = await gateway({ adminPort: 0 })
    const w = await watch(gw, 'hypertcp/bl-1/status')
    const c = await loggedIn(gw)
    const info = ['ver', '1.4.0', 'h-beat', '1', 'buff-in', '40', 'dev', 'ESP32', 'secret', 'left out']
    c.sendFrame(INTERNAL, 1, fields(...info))
    const presence = await w.json<{ info?: object }>('hypertcp/bl-1/status', (p) => p.info !== undefined)
    expect(presence).to.deep.include({
      online: true,
      dialect: 'blynk',
      info: { ver: '1.4.0', 'h-beat': '1', 'buff-in': '40', dev: 'ESP32' },
    })
    const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/devices`)
    const { devices } = (await res.json()) as { devices: Record<string, unknown>[] }
    expect(devices.find((d) => d.id === 'bl-1')).to.deep.include({ dialect: 'blynk', info: presence.info })
    // h-beat 1: the gateway pings after 1 s of silence (never with msg_id 0: the library would drop).
    const ping = await c.frames.take((f) => f.type === Cmd.PING, 5000, 'the gateway PING')
    expect(ping.msgId).to.not.equal(0)
    c.sendFrame(Cmd.RESPONSE, ping.msgId) // answered as the library does: RESPONSE, length 200
    // buff-in 40: a write whose body is longer is dropped; a short one is sent.
    await w.publish('hypertcp/bl-1/dn', JSON.stringify({ pin: 'V1', value: 'x'.repeat(40) }))
    await waitUntil(() => gw.stats().droppedBy.too_large === 1, 'the long write dropped')
    await w.publish('hypertcp/bl-1/dn', '{"pin":"V1","value":"hi"}')
    const hw = await c.frames.take((f) => f.type === HARDWARE, 5000, 'the HARDWARE frame')
    expect(hw.text).to.equal('vw\u00001\u0000hi')
    expect(hw.msgId).to.not.equal(0)
  })

  it('gets what was kept while it was away at its login, at most once (it acknowledges nothing)', async () => {
    const gw = await gateway({ offlineQueueMessages: 10, downlinkDelivery: 'at-least-once' })
    const w = await watch(gw)
    await w.publish('hypertcp/bl-1/dn', '{"pin":"V1","value":"kept"}')
    await waitUntil(() => gw.stats().kept === 1, 'kept for the device')
    const c = await loggedIn(gw)
    const hw = await c.frames.take((f) => f.type === HARDWARE, 5000, 'the kept write')
    expect(hw.text).to.equal('vw\u00001\u0000kept')
    // Written, it has left the store: a Blynk device answers nothing that says it arrived.
    await waitUntil(() => gw.stats().keptNow === 0, 'the store is empty')
  })

  it('republishes its presence only when its info changes, and counts INTERNAL against the rate', async () => {
    const gw = await gateway({ messageRate: 1, messageBurst: 3 })
    const w = await watch(gw, 'hypertcp/bl-1/status', 'hypertcp/bl-1/up')
    const c = await loggedIn(gw)
    const info = fields('ver', '1.4.0', 'dev', 'ESP32')
    c.sendFrame(INTERNAL, 1, info)
    await w.json('hypertcp/bl-1/status', (p: { info?: object }) => p.info !== undefined)
    c.sendFrame(INTERNAL, 2, info) // the same again: nothing new to say
    c.sendFrame(HARDWARE, 3, fields('vw', 0, 'sentinel'))
    expect(await w.json('hypertcp/bl-1/up')).to.deep.equal({ pin: 'V0', value: 'sentinel' })
    const presences = w.inbox.history.filter(
      (m) => m.topic === 'hypertcp/bl-1/status' && m.text.includes('"info"'),
    )
    expect(presences).to.have.length(1)
    c.sendFrame(INTERNAL, 4, info) // the burst of 3 is spent
    expect(await c.response(4)).to.equal(Status.QUOTA_LIMIT)
  })

  it('sends REDIRECT as host\\0port on a control-topic redirect', async () => {
    const gw = await gateway({ redirectAllow: ['blynk.example.com:8442'] })
    const w = await watch(gw)
    const c = await loggedIn(gw)
    await w.publish('hypertcp/bl-1/ctl', '{"action":"redirect","server":"blynk.example.com","port":8442}')
    const r = await c.frames.take((f) => f.type === Cmd.REDIRECT, 5000, 'REDIRECT')
    expect(r.text).to.equal('blynk.example.com\u00008442')
    await c.waitClosed()
  })

  it('serves Blynk over TLS beside HyperTCP, one set of metrics for both', async () => {
    const pki = makePki()
    const gw = await gateway({
      blynkPort: 'off',
      blynkTlsPort: 0,
      tlsCert: pki.server.cert,
      tlsKey: pki.server.key,
      adminPort: 0,
    })
    const c = await track(RawClient.connectTls(gw.blynkPort!, { ca: pki.caPem }))
    c.sendFrame(HW_LOGIN, 1, Buffer.from(TOKEN))
    expect(await c.response(1)).to.equal(Status.SUCCESS)
    const h = await track(RawClient.connect(gw.port))
    expect(await h.login('tok-1')).to.equal(Status.SUCCESS)
    await waitUntil(() => gw.stats().online === 2, 'both online')
    const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
    expect(metrics).to.include('hypertcp_devices_connected_by_dialect{dialect="blynk"} 1')
    expect(metrics).to.include('hypertcp_devices_connected_by_dialect{dialect="hypertcp"} 1')
  })
})
