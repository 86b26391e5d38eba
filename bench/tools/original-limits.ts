/**
 * What the original HyperTCPProtocol.h (../shared/vendor/hyper-tcp-ab3c359, unchanged) accepts as a
 * downlink, measured: the header built for Linux with ArduinoJson 6 and 7, 32-bit (the slot size of
 * an ESP32/ESP8266) and 64-bit, run against an in-process gateway. For each build, the largest flat
 * object (`{"k0":0,…}`), the longest array (`{"v":[0,…]}`), the longest string member and the
 * deepest nesting the device's onMessageReceived() gets; beyond them it drops the message silently (and still
 * acknowledges it). The figures are the README's table and `maxDownlinkMembers` advice.
 *
 *   node --import tsx bench/tools/original-limits.ts [--max 2000]
 *
 * Needs g++ (and g++-multilib for the 32-bit builds) and ../shared/vendor.
 */
import { parseArgs } from 'node:util'
import type { Gateway } from '../../src/index.js'
import { DeviceProcess } from '../../test/firmware/support/device.js'
import {
  ARDUINOJSON,
  type ArduinoJsonVersion,
  hostBuild,
  missing32,
  missingVendor,
  ORIGINAL,
} from '../../test/firmware/support/vendor.js'
import { PEER_GATEWAY, startGateway } from '../../test/helpers/gateway.js'
import { MqttWatcher } from '../../test/helpers/mqtt.js'

const { values } = parseArgs({ options: { max: { type: 'string', default: '2000' } } })
const MAX = Number(values.max)

interface Shape {
  name: string
  /** The payload of size `n`, and the members and elements it holds at every depth. */
  make: (n: number) => unknown
  members: (n: number) => number
}

const SHAPES: Shape[] = [
  {
    name: 'flat object members',
    make: (n) => Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, k])),
    members: (n) => n,
  },
  { name: 'array elements', make: (n) => ({ v: Array.from({ length: n }, () => 0) }), members: (n) => n + 1 },
  { name: 'string bytes', make: (n) => ({ s: 'x'.repeat(n) }), members: () => 1 },
  { name: 'nesting levels', make: (n) => nested(n), members: (n) => n },
]

/** `{"n":{"n":…1}}`: `levels` objects, one inside the other. */
function nested(levels: number): unknown {
  let v: unknown = 1
  for (let k = 0; k < levels; k++) v = { n: v }
  return v
}

/** How far each shape is tried. */
const LIMITS: Record<string, number> = { 'string bytes': 60_000, 'nesting levels': 64 }

/** One original device on the gateway; `accepts(payload)` tells whether its callback got it. */
class Probe {
  private seq = 0
  private constructor(
    private readonly dev: DeviceProcess,
    private readonly w: MqttWatcher,
  ) {}

  static async start(gw: Gateway, binary: string): Promise<Probe> {
    const w = await MqttWatcher.connect(gw.mqttUrl, [], PEER_GATEWAY)
    const dev = DeviceProcess.run(binary, ['127.0.0.1', String(gw.port), 'tok-1'])
    await dev.waitFor(/^CONNECT_RESULT ok=1$/)
    return new Probe(dev, w)
  }

  async accepts(payload: unknown): Promise<boolean> {
    const sentinel = ++this.seq
    await this.w.publish('hypertcp/dev-1/dn', JSON.stringify(payload))
    await this.w.publish('hypertcp/dev-1/dn', JSON.stringify({ sentinel }))
    // Messages arrive in order: either the payload then the sentinel, or the sentinel alone.
    const first = await this.dev.waitFor(/^MSG from=server payload=(.*)$/, 20_000)
    if (JSON.parse(first[1]!).sentinel === sentinel) return false
    await this.dev.waitFor(new RegExp(`^MSG from=server payload=\\{"sentinel":${sentinel}\\}$`), 20_000)
    return true
  }

  async stop(): Promise<void> {
    await this.dev.stop()
    await this.w.end()
  }
}

/** The largest n in [0, max] the device accepts (acceptance is monotonic in n), or max if all. */
async function largest(probe: Probe, shape: Shape, max: number): Promise<number> {
  if (await probe.accepts(shape.make(max))) return max
  let lo = 0
  let hi = max // accepts(lo), !accepts(hi)
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (await probe.accepts(shape.make(mid))) lo = mid
    else hi = mid
  }
  return lo
}

async function main(): Promise<void> {
  const missing = missingVendor()
  if (missing) throw new Error(missing)
  const bits: Array<32 | 64> = (await missing32()) ? [64] : [32, 64]
  if (bits.length === 1) console.error(`no 32-bit builds: ${await missing32()}`)
  const gw = await startGateway({ maxDownlinkSize: 65_535, maxFrameSize: 65_535 })
  const rows: string[] = []
  try {
    for (const aj of ARDUINOJSON as readonly ArduinoJsonVersion[]) {
      for (const b of bits) {
        const built = await hostBuild({
          source: `${process.cwd()}/firmware/host/original/original_device.cpp`,
          header: 'original',
          arduinoJson: aj,
          m32: b === 32,
        })
        const probe = await Probe.start(gw, built.output)
        const cells: string[] = []
        for (const shape of SHAPES) {
          const max = LIMITS[shape.name] ?? MAX
          const n = await largest(probe, shape, max)
          console.error(`ArduinoJson ${aj}, ${b}-bit: ${shape.name}: ${n}${n === max ? ' (all tried)' : ''}`)
          const members = shape.members(n)
          const counted = shape.name.endsWith('members') || shape.name.endsWith('elements')
          cells.push(n === max ? `≥ ${n} (all tried)` : counted ? `${n} (${members} counted)` : `${n}`)
        }
        await probe.stop()
        rows.push(`| ${aj}, ${b}-bit | ${cells.join(' | ')} |`)
      }
    }
  } finally {
    await gw.close()
  }
  console.log(
    `Original header (${ORIGINAL.split('/').pop()}) — largest downlink payload its callback gets:\n`,
  )
  console.log(`| ArduinoJson, build | ${SHAPES.map((s) => s.name).join(' | ')} |`)
  console.log(`| --- | ${SHAPES.map(() => '---').join(' | ')} |`)
  for (const row of rows) console.log(row)
}

await main()
