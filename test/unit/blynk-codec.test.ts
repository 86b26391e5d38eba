import { expect } from 'chai'
import {
  eventUplink,
  fields,
  hardwareUplink,
  parseInfo,
  pinWrites,
  propertyUplink,
  syncUplink,
} from '../../src/dialects/blynk/codec.js'

const f = (text: string) => fields(Buffer.from(text))!

describe('Blynk codec', () => {
  it('splits bodies on NUL, a trailing NUL ending the last field; refuses bytes that are not UTF-8', () => {
    expect(f('vw\u00001\u000012')).to.deep.equal(['vw', '1', '12'])
    expect(f('vw\u00001\u000012\u0000')).to.deep.equal(['vw', '1', '12'])
    expect(f('vw\u00001\u0000\u0000')).to.deep.equal(['vw', '1', ''])
    expect(fields(Buffer.alloc(0))).to.deep.equal([])
    expect(fields(Buffer.from([0x76, 0xff]))).to.equal(undefined)
  })

  it('maps HARDWARE writes and reads to JSON, and refuses what is not one', () => {
    expect(hardwareUplink(['vw', '0', '12'])).to.deep.equal({ ok: true, json: '{"pin":"V0","value":"12"}' })
    expect(hardwareUplink(['dw', '013', '1'])).to.deep.equal({ ok: true, json: '{"pin":"D13","value":"1"}' })
    expect(hardwareUplink(['aw', '2', '1', '2'])).to.deep.equal({
      ok: true,
      json: '{"pin":"A2","value":["1","2"]}',
    })
    expect(hardwareUplink(['vw', '3', ''])).to.deep.equal({ ok: true, json: '{"pin":"V3","value":""}' })
    expect(hardwareUplink(['ar', '1'])).to.deep.equal({ ok: true, json: '{"pin":"A1","read":true}' })
    expect(hardwareUplink(['pm', '1', 'out'])).to.deep.equal({ ok: true, json: null })
    expect(hardwareUplink(['vw', '3'])).to.deep.equal({ ok: false, status: 'body' })
    expect(hardwareUplink(['vw', '1000', '1'])).to.deep.equal({ ok: false, status: 'body' })
    expect(hardwareUplink(['vw', '-1', '1'])).to.deep.equal({ ok: false, status: 'body' })
    expect(hardwareUplink(['vr', '1', '2'])).to.deep.equal({ ok: false, status: 'body' })
    expect(hardwareUplink(['xx', '1'])).to.deep.equal({ ok: false, status: 'command' })
    expect(hardwareUplink([])).to.deep.equal({ ok: false, status: 'command' })
  })

  it('maps syncs, properties and events', () => {
    expect(syncUplink([])).to.deep.equal({ ok: true, json: '{"read":true}' })
    expect(syncUplink(['vr', '4'])).to.deep.equal({ ok: true, json: '{"pin":"V4","read":true}' })
    expect(syncUplink(['vw', '4'])).to.deep.equal({ ok: false, status: 'body' })
    expect(syncUplink(['vr'])).to.deep.equal({ ok: false, status: 'body' })
    expect(propertyUplink(['1', 'color', '#ff0000'])).to.deep.equal({
      ok: true,
      json: '{"pin":"V1","property":"color","value":"#ff0000"}',
    })
    expect(propertyUplink(['1', '', 'x'])).to.deep.equal({ ok: false, status: 'body' })
    expect(eventUplink(['door'])).to.deep.equal({ ok: true, json: '{"event":"door"}' })
    expect(eventUplink([''])).to.deep.equal({ ok: false, status: 'body' })
  })

  it('reads the info: known keys, values cut to 64 characters, h-beat and buff-in within bounds', () => {
    const long = 'x'.repeat(100)
    expect(
      parseInfo(['ver', '1.4.0', 'h-beat', '10', 'buff-in', '1024', 'dev', long, 'bogus', 'y']),
    ).to.deep.equal({
      info: { ver: '1.4.0', 'h-beat': '10', 'buff-in': '1024', dev: 'x'.repeat(64) },
      keepaliveMs: 10_000,
      maxDownlinkSize: 1024,
    })
    expect(parseInfo(['mcu', '0.1', 'blynk', '1.3.2'])).to.deep.equal({
      info: { mcu: '0.1', blynk: '1.3.2', ver: '1.3.2' },
    })
    expect(parseInfo(['ver', '1', 'h-beat', '0', 'buff-in', '8'])).to.deep.equal({
      info: { ver: '1', 'h-beat': '0', 'buff-in': '8' },
    })
    expect(parseInfo(['rtc', 'sync'])).to.equal(undefined)
    expect(parseInfo(['ver'])).to.equal(undefined)
  })

  it('turns down-topic pin writes into HARDWARE bodies, and says why others cannot be sent', () => {
    expect(pinWrites({ pin: 'V1', value: 'hello' })).to.deep.equal({
      ok: true,
      bodies: ['vw\u00001\u0000hello'],
    })
    expect(
      pinWrites([
        { pin: 'd2', value: true },
        { pin: 7, value: [1, 'b'] },
      ]),
    ).to.deep.equal({
      ok: true,
      bodies: ['dw\u00002\u00001', 'vw\u00007\u00001\u0000b'],
    })
    expect(pinWrites({ pin: 'A0', value: 0 })).to.deep.equal({ ok: true, bodies: ['aw\u00000\u00000'] })
    for (const bad of [
      { temperature: 1 },
      { pin: 'V1' },
      { pin: 'X1', value: 1 },
      { pin: 'V256', value: 1 },
      { pin: 1.5, value: 1 },
      { pin: 'V1', value: null },
      { pin: 'V1', value: { a: 1 } },
      { pin: 'V1', value: [] },
      { pin: 'V1', value: 'a\u0000b' },
      [],
      'text',
      Array.from({ length: 65 }, () => ({ pin: 'V1', value: 1 })),
    ]) {
      expect(pinWrites(bad).ok, JSON.stringify(bad)).to.equal(false)
    }
  })
})
