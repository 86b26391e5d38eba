import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { encodeFrame } from '../../src/protocol/encoder.js'
import { CliProcess, requireBuild } from '../helpers/cli.js'
import { DEVICES } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient } from '../helpers/raw-client.js'
import { vectors } from '../helpers/vectors.js'

/** Resident memory of a process, in MB (Linux). */
function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
  return kb / 1024
}

/** A small seeded PRNG (mulberry32): failures are reproducible from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Starts the built gateway in its own process (embedded broker) and returns it with its ports. */
async function startGatewayProcess(extra: string[] = []) {
  const config = join(tmpdir(), `htgw-fuzz-${process.pid}-${Date.now()}.json`)
  // The good devices' tokens appear in no fuzz input: golden frames (which may survive mutation
  // intact) log in as dev-1 and dev-2, and fuzzers as dev-4; none of them can take a good one over.
  const good = [1, 2, 3].map((n) => ({ id: `good-${n}`, token: `good-token-${n}-${process.pid}` }))
  writeFileSync(config, JSON.stringify({ devices: [...DEVICES, ...good], gatewayId: 'fuzz' }))
  const { gw, port, mqttPort } = await CliProcess.standalone(['--config', config, ...extra])
  return { gw, port, mqttUrl: `mqtt://127.0.0.1:${mqttPort}` }
}

/** One hostile connection: sends `bytes` in a few random pieces, then lingers or hangs up. */
function hostile(port: number, bytes: Buffer, rnd: () => number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    const done = () => {
      s.destroy()
      resolve()
    }
    s.on('error', done)
    s.on('close', done)
    s.on('data', () => {})
    s.on('connect', () => {
      let at = 0
      while (at < bytes.length) {
        const n = 1 + Math.floor(rnd() * (bytes.length - at))
        s.write(bytes.subarray(at, at + n))
        at += n
      }
      const r = rnd()
      if (r < 0.3) s.resetAndDestroy()
      else if (r < 0.6) s.end()
      setTimeout(done, 20 + Math.floor(rnd() * 150))
    })
  })
}

/** Random and mutated input: garbage, huge lengths, truncated bodies, bad UTF-8/JSON, frames before login. */
function hostileBytes(rnd: () => number): Buffer {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!
  const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)))
  const golden = vectors
    .filter((v) => v.direction === 'device->gateway')
    .map((v) => Buffer.from(v.hex, 'hex'))
  // Fuzzers log in as dev-4 (taking each other over) or fail.
  const login = encodeFrame(
    Cmd.LOGIN,
    1,
    Buffer.from(pick(['tok-4', 'nope', '{"token":"tok-4"}', '{"token":"tok-4","device_id":"dev-1"}', ''])),
  )
  const frame = () => {
    switch (Math.floor(rnd() * 7)) {
      case 0: // a random header announcing anything, with a truncated or absent body
        return Buffer.concat([randomBytes(5), randomBytes(Math.floor(rnd() * 64))])
      case 1: // a golden frame with bytes flipped
        return Buffer.from(pick(golden).map((b) => (rnd() < 0.1 ? b ^ (1 << Math.floor(rnd() * 8)) : b)))
      case 2: // invalid UTF-8 or broken JSON in a well-framed message
        return encodeFrame(
          Cmd.JSON_MESSAGE,
          Math.floor(rnd() * 65536),
          rnd() < 0.5 ? randomBytes(40) : Buffer.from('{"targetId":"server","payload":{"a":'),
        )
      case 3: // an unknown command with a body
        return encodeFrame(7 + Math.floor(rnd() * 20), 1, randomBytes(Math.floor(rnd() * 3000)))
      case 4: // an oversize header
        return Buffer.from([Cmd.JSON_MESSAGE, 0, 9, 0xff, 0xff])
      case 5: // targetIds that try to reach other topics
        return encodeFrame(
          Cmd.JSON_MESSAGE,
          3,
          Buffer.from(JSON.stringify({ targetId: pick(['#', '+', 'a/b', '$SYS', '']), payload: {} })),
        )
      default: // a valid message (if logged in) or a frame before login
        return encodeFrame(
          pick([Cmd.JSON_MESSAGE, Cmd.BROADCAST, Cmd.PING]),
          2,
          Buffer.from('{"targetId":"server","payload":{"fuzz":1}}'),
        )
    }
  }
  const start = rnd() < 0.6 ? [login] : []
  if (rnd() < 0.15) return randomBytes(Math.floor(rnd() * 2000))
  return Buffer.concat([...start, ...Array.from({ length: 1 + Math.floor(rnd() * 6) }, frame)])
}

describe('hostile input against a running gateway', function () {
  this.timeout(120_000)
  before(requireBuild)

  it('survives thousands of fuzzing connections; the good devices alongside lose nothing; memory stays bounded', async () => {
    const seed = Number(process.env.HTGW_FUZZ_SEED ?? Date.now() % 1_000_000)
    const rnd = prng(seed)
    const { gw, port, mqttUrl } = await startGatewayProcess()
    const pid = gw.child.pid!
    const watcher = await MqttWatcher.connect(mqttUrl, ['hypertcp/+/up'])
    const good: RawClient[] = []
    try {
      for (const n of [1, 2, 3]) {
        const token = `good-token-${n}-${process.pid}`
        const c = await RawClient.connect(port)
        expect(await c.login(token)).to.equal(Status.SUCCESS)
        good.push(c)
      }
      const rssBefore = rssMb(pid)
      // Good traffic, both ways, for the whole run.
      let seq = 0
      const acked: number[] = []
      const downSent: number[] = []
      const ticker = setInterval(() => {
        seq++
        const c = good[seq % good.length]!
        const s = seq
        c.sendFrame(Cmd.JSON_MESSAGE, s % 65535 || 1, { targetId: 'server', payload: { good: s } })
        c.response(s % 65535 || 1, 20_000).then((status) => status === 0 && acked.push(s))
        if (seq % 3 === 0) {
          downSent.push(s)
          void watcher.publish(`hypertcp/good-${(s % 3) + 1}/dn`, JSON.stringify({ down: s }))
        }
      }, 10)
      // The fuzz: waves of concurrent hostile connections.
      const TOTAL = 6000
      const CONCURRENCY = 150
      let started = 0
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (started < TOTAL) {
            started++
            await hostile(port, hostileBytes(rnd), rnd)
          }
        }),
      )
      clearInterval(ticker)
      const rssAfter = rssMb(pid)
      // Every acknowledged good message arrived, every downlink reached its device.
      await waitUntil(() => acked.length >= seq - 3, 'the good messages are acknowledged', 20_000)
      for (const s of acked) await watcher.json(`hypertcp/good-${(s % 3) + 1}/up`, (p) => p.good === s)
      for (const s of downSent) {
        const device = good[s % 3]!
        await device.frames.take(
          (f) => f.type === Cmd.JSON_MESSAGE && JSON.parse(f.text).payload.down === s,
          20_000,
        )
      }
      for (const c of good) expect(c.isClosed, 'a good device was disconnected').to.equal(false)
      expect(gw.child.exitCode, 'the gateway process is alive').to.equal(null)
      console.log(
        `      seed ${seed}: ${TOTAL} hostile connections; ${acked.length} good messages and ${downSent.length} downlinks all delivered; gateway RSS ${rssBefore.toFixed(1)} -> ${rssAfter.toFixed(1)} MB`,
      )
      expect(rssAfter - rssBefore, 'RSS growth (MB)').to.be.below(60)
    } finally {
      for (const c of good) c.destroy()
      await watcher.end()
      gw.kill('SIGKILL')
      await gw.exited
    }
  })

  it('a flood of oversize headers from 16 sockets grows the gateway RSS by less than 25 MB', async () => {
    // Each of 16 sockets, 100 times over: a header announcing 65535 bytes and the first KiB of
    // that body. Buffering what such frames announce would show as hundreds of MB. The first burst
    // is a warm-up, excluded: any first burst of connections grows a Node.js process by ~40 MB
    // (V8 and allocator warm-up; a bare net.Server that answers 5 bytes grows the same).
    const { gw, port } = await startGatewayProcess()
    const pid = gw.child.pid!
    const header = Buffer.from([Cmd.JSON_MESSAGE, 0, 1, 0xff, 0xff])
    const body = Buffer.alloc(1024, 0x41)
    const burst = async (): Promise<string[]> => {
      const replies: string[] = []
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let round = 0; round < 100; round++) {
            await new Promise<void>((resolve) => {
              const s = connect(port, '127.0.0.1')
              let got = Buffer.alloc(0)
              s.on('data', (d: Buffer) => {
                got = Buffer.concat([got, d])
              })
              s.on('error', () => {})
              s.on('close', () => {
                replies.push(got.toString('hex'))
                resolve()
              })
              s.on('connect', () => {
                s.write(header)
                s.write(body)
              })
            })
          }
        }),
      )
      return replies
    }
    try {
      const cold = rssMb(pid)
      await burst()
      await burst()
      const warm = rssMb(pid)
      const replies = [...(await burst()), ...(await burst())]
      const after = rssMb(pid)
      console.log(
        `      3200 oversize headers (announcing 200 MB) from 16 sockets; gateway RSS ${warm.toFixed(1)} -> ${after.toFixed(1)} MB (cold ${cold.toFixed(1)}; two warm-up bursts excluded)`,
      )
      expect(replies).to.have.length(3200)
      // Refused at the header, every time: RESPONSE(1, length=11), nothing else.
      expect(new Set(replies)).to.deep.equal(new Set(['000001000b']))
      expect(after - warm).to.be.below(25)
      expect(gw.child.exitCode).to.equal(null)
    } finally {
      gw.kill('SIGKILL')
      await gw.exited
    }
  })
})
