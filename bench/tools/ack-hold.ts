/**
 * How long an acknowledgement held by `ackHoldMs` (PROTOCOL decision 22) really waits: a session
 * over an in-memory pair, two uplinks in flight, the first completed, the time until its answer
 * reaches the device. Nothing else runs, so this is the timer's own bound on this machine.
 *
 *   node --import tsx bench/tools/ack-hold.ts [holdMs=2] [samples=2000]
 */

import { performance } from 'node:perf_hooks'
import type { AuthResult } from '../../src/auth/registry.js'
import { hypertcp } from '../../src/dialects/hypertcp/index.js'
import { LogThrottle, silentLogger } from '../../src/log.js'
import { Cmd } from '../../src/protocol/constants.js'
import { FrameDecoder } from '../../src/protocol/decoder.js'
import { encodeFrame } from '../../src/protocol/encoder.js'
import { Session } from '../../src/session/session.js'
import type { SessionHost, UplinkDone } from '../../src/session/types.js'
import { WriteBatcher } from '../../src/session/write-batcher.js'
import { createStats } from '../../src/stats.js'
import { duplexPair } from '../../test/helpers/duplex.js'

const holdMs = Number(process.argv[2] ?? 2)
const samples = Number(process.argv[3] ?? 2000)

const pending: UplinkDone[] = []
const host: SessionHost = {
  authenticate: (): AuthResult => ({
    ok: true,
    identity: { deviceId: 'd', username: 'd', tokenDigest: '', mayMessage: () => true, mayBroadcast: true },
  }),
  attach: () => Promise.resolve(),
  uplink: (_s, _k, _t, _p, done) => pending.push(done),
  takesRaw: () => false,
  uplinkRaw: () => {},
  uplinkBytes: () => {},
  detach: () => {},
}
const [gw, dev] = duplexPair()
const session = new Session(
  's',
  gw,
  {
    dialect: hypertcp,
    maxFrameSize: 4096,
    maxDownlinkSize: 1024,
    idCharset: 'ascii',
    loginTimeoutMs: 60_000,
    keepaliveMs: 3_600_000,
    maxInflight: 16,
    maxWriteQueue: 1 << 20,
    drainTimeoutMs: 60_000,
    messageRate: 0,
    messageBurst: 1,
    gatekeeper: { checkLogin: () => ({ action: 'proceed' }), loginFailed: () => {} },
    throttle: new LogThrottle(silentLogger),
    batcher: new WriteBatcher(holdMs),
  },
  host,
  silentLogger,
  createStats(),
)
let answered: ((at: number) => void) | undefined
const decoder = new FrameDecoder(
  65535,
  (type, msgId) => {
    if (type === Cmd.RESPONSE && msgId > 1) answered?.(performance.now())
    return undefined
  },
  () => {},
  'device',
)
decoder.expectLoginReply = true
dev.on('data', (c: Buffer) => decoder.push(c))
const body = Buffer.from('{"targetId":"server","payload":1}')
dev.write(encodeFrame(Cmd.LOGIN, 1, Buffer.from('t')))
await new Promise((r) => setTimeout(r, 10))

// The batcher's hold timer is unref'd (it never keeps a gateway alive): this keeps the script's loop up.
const alive = setInterval(() => {}, 1000)
const waits: number[] = []
let id = 2
for (let i = 0; i < samples; i++) {
  dev.write(encodeFrame(Cmd.JSON_MESSAGE, id++, body))
  dev.write(encodeFrame(Cmd.JSON_MESSAGE, id++, body))
  while (pending.length < 2) await new Promise((r) => setImmediate(r))
  const [first, second] = pending.splice(0, 2) as [UplinkDone, UplinkDone]
  const got = new Promise<number>((resolve) => (answered = resolve))
  const start = performance.now()
  first(0) // held: the second is still in flight
  waits.push((await got) - start)
  second(0)
  await new Promise<number>((resolve) => (answered = resolve))
}
session.close('shutdown')
clearInterval(alive)
waits.sort((a, b) => a - b)
const at = (q: number) => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))]!.toFixed(2)
process.stdout.write(
  `ackHoldMs ${holdMs}: ${samples} held acknowledgements waited p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${waits.at(-1)!.toFixed(2)} ms\n`,
)
