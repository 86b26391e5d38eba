/**
 * firmware/ on the real ArduinoJson 6.21.5 and 7.2.0 (../shared/vendor):
 * the core, the JSON layer and every example build with no warning from
 * firmware/; every sending call that compiles against the original header
 * compiles against ours; and the JsonObject layer, on each version, carries
 * downlinks up to the RX buffer and the documented nesting against the real
 * gateway.
 */
import { expect } from 'chai'
import type { Gateway } from '../../src/index.js'
import { useCleanups } from '../helpers/cleanups.js'
import { PEER_GATEWAY, startGateway } from '../helpers/gateway.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { DeviceProcess } from './support/device.js'
import {
  ARDUINOJSON,
  fromFirmware,
  requireVendor,
  type VendorPrograms,
  vendorPrograms,
} from './support/vendor.js'

const LOCAL = '127.0.0.1'

/** The probe's table: `call` → compiles. */
function probeTable(output: string): Map<string, boolean> {
  const table = new Map<string, boolean>()
  for (const line of output.trim().split('\n')) {
    const m = /^(.*) ([01])$/.exec(line)
    if (!m) throw new Error(`unexpected probe line: ${line}`)
    table.set(m[1]!, m[2] === '1')
  }
  return table
}

async function runProbe(binary: string): Promise<Map<string, boolean>> {
  return probeTable((await DeviceProcess.run(binary, []).finish()).join('\n'))
}

/** `{"k0":0,…}` with `members` members, `[0,1,…]` nested `depth` deep, and so on. */
function objectOf(members: number): Record<string, number> {
  return Object.fromEntries(Array.from({ length: members }, (_, k) => [`k${k}`, k]))
}
function nested(depth: number): unknown {
  let v: unknown = 1
  for (let k = 1; k < depth; k++) v = k % 2 ? { n: v } : [v]
  return { n: v }
}
function nesting(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  const children = Array.isArray(value) ? value : Object.values(value)
  return 1 + Math.max(0, ...children.map(nesting))
}

describe('firmware/ on the real ArduinoJson 6 and 7', function () {
  this.timeout(240000)
  requireVendor()

  for (const aj of ARDUINOJSON) {
    describe(`ArduinoJson ${aj}`, () => {
      let programs: VendorPrograms
      before(async function () {
        this.timeout(240000)
        programs = await vendorPrograms(aj)
      })

      it('builds the core, the JSON layer and every example with -Wall -Wextra (and stricter) and no warning from firmware/', () => {
        const ours = [
          programs.device,
          programs.example,
          programs.console,
          programs.core,
          programs.originalExampleOnOurs,
          programs.probeOurs,
        ]
        const all = ours.flatMap((b) => b.diagnostics)
        const vendored = all.length - fromFirmware(all).length
        if (vendored) console.log(`      (${vendored} warning(s) from the vendored sources, not ours)`)
        expect(fromFirmware(all)).to.deep.equal([])
      })

      it('accepts every sending call the original header accepts: a drop-in replacement', async () => {
        const original = await runProbe(programs.probeOriginal.output)
        const ours = await runProbe(programs.probeOurs.output)
        expect([...ours.keys()]).to.deep.equal([...original.keys()])
        const lost = [...original]
          .filter(([call, compiles]) => compiles && !ours.get(call))
          .map(([call]) => call)
        expect(lost, 'compile against the original, not against ours').to.deep.equal([])
        // And what the original rejected though its own README does it.
        expect(ours.get('sendMessage(target, JsonObject temporary)')).to.equal(true)
        expect(original.get('sendMessage(target, JsonObject temporary)')).to.equal(false)
        // A plain int is no JSON: neither accepts it.
        expect(ours.get('sendToServer(int)')).to.equal(false)
      })

      describe('against the gateway', () => {
        const cleanups = useCleanups()

        async function online(): Promise<{ gw: Gateway; w: MqttWatcher; dev: DeviceProcess }> {
          const gw = await startGateway({ maxDownlinkSize: 2048 })
          cleanups.push(() => gw.close())
          const w = await MqttWatcher.connect(
            gw.mqttUrl,
            ['hypertcp/dev-1/up', 'hypertcp/broadcast'],
            PEER_GATEWAY,
          )
          cleanups.push(() => w.end())
          const dev = DeviceProcess.start(programs.device.output, { connect: [`${LOCAL}:${gw.port}:tok-1`] })
          cleanups.push(() => dev.stop())
          await dev.waitFor(/^LOGIN_OK i=0/)
          return { gw, w, dev }
        }

        it('parses downlinks that fill the 1024-byte RX buffer, many members or many elements', async () => {
          const { w, dev } = await online()
          // The envelope `{"from":"server","payload":…}` is 28 bytes around the payload.
          const members = objectOf(105)
          const elements = { v: Array.from({ length: 480 }, (_, k) => k % 10) }
          for (const payload of [members, elements]) {
            const text = JSON.stringify(payload)
            expect(text.length + 28).to.be.within(900, 1024)
            await w.publish('hypertcp/dev-1/dn', text)
            const got = await dev.waitFor(/^(MSG i=0 from=server payload=(.*)|DROP .*)$/)
            expect(got[0]).to.match(/^MSG/)
            expect(JSON.parse(got[2]!)).to.deep.equal(payload)
          }
        })

        it('takes payloads nested as deep as ArduinoJson does (10) and drops deeper ones as malformed', async () => {
          const { w, dev } = await online()
          const ten = nested(10)
          const eleven = nested(11)
          expect([nesting(ten), nesting(eleven)]).to.deep.equal([10, 11])
          await w.publish('hypertcp/dev-1/dn', JSON.stringify(ten))
          const got = await dev.waitFor(/^(MSG i=0 from=server payload=(.*)|DROP .*)$/)
          expect(JSON.parse(got[2]!)).to.deep.equal(ten)
          await w.publish('hypertcp/dev-1/dn', JSON.stringify(eleven))
          await dev.waitFor(/^DROP i=0 type=30 id=\d+ len=\d+ reason=malformed$/)
          // And the device refuses to send what it could not take back.
          await dev.command(`server 0 ${JSON.stringify(eleven)}`, /^SEND_FAILED i=0$/)
        })

        it('sends through the JsonVariant overloads: objects as objects, a string as JSON text, others refused', async () => {
          const { w, dev } = await online()
          await dev.command('server 0 {"temperature":25.6,"tags":["a"]}', /^SENT i=0 id=1$/)
          expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ temperature: 25.6, tags: ['a'] })
          await dev.command('server 0 "{\\"as\\":\\"text\\"}"', /^SENT i=0 id=2$/)
          expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ as: 'text' })
          await dev.command('server 0 [1,2]', /^SEND_FAILED i=0$/)
          await dev.command('server 0 42', /^SEND_FAILED i=0$/)
          await dev.command('bcast 0 {"notification":"all"}', /^SENT i=0 id=3$/)
          expect(await w.json('hypertcp/broadcast')).to.deep.include({ payload: { notification: 'all' } })
        })
      })
    })
  }
})
