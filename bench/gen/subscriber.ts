/**
 * The one MQTT subscriber that counts what arrives on `hypertcp/+/up`, for the gateway runs and the
 * direct runs alike. A bare MQTT 3.1.1 client (bench/lib/mqtt-stream.ts) rather than MQTT.js, so the
 * receiving end is not what limits either side: CONNECT, SUBSCRIBE and the PUBACK template are
 * mqtt-packet's, and so is the parsing of CONNACK and SUBACK; PUBLISHes are read as views of the
 * input (mqtt-packet's parser would cost this process about 1 µs per message, see mqtt-stream.ts),
 * payload fields at fixed offsets, and the PUBACKs for one read leave in one write.
 *
 * Per run it counts per device (distinct, duplicates, out of order), the arrivals inside the
 * measurement window (throughput), and the latency of messages sent inside it (HDR histogram).
 */
import { createServer, type Server, type Socket } from 'node:net'
import type { Packet } from 'mqtt-packet'
import { nowUs, sleep } from '../lib/clock.js'
import { encodeHistogram, newHistogram } from '../lib/hist.js'
import { serve } from '../lib/ipc.js'
import {
  type BrokerAddress,
  connectBroker,
  connectPacket,
  DISCONNECT,
  MqttStream,
  PUBACK_LEN,
  refusal,
  subscribePacket,
  writePuback,
} from '../lib/mqtt-stream.js'
import { type PayloadFields, readPayload } from '../lib/payload.js'
import { SeqTracker } from '../lib/seqtrack.js'
import { Slab } from '../lib/slab.js'

export interface ConnectArgs {
  broker: BrokerAddress
  qos: 0 | 1
  devices: number
  topic: string
}

export interface ResetArgs {
  /** Arrivals within [start, end) count for throughput; latency is recorded for messages sent within it. */
  windowStartUs: number
  windowEndUs: number
}

export interface DrainArgs {
  /** Distinct messages expected in total (what the publishers had acknowledged). */
  expected: number
  /** Give up after this long without a new arrival. */
  idleMs: number
}

export interface SubscriberResult {
  received: number
  unique: number
  duplicates: number
  outOfOrder: number
  malformed: number
  /** Arrivals inside the window. */
  inWindow: number
  /** Distinct messages per device. */
  uniquePerDevice: number[]
  histogram: string
}

export type SubscriberCommands = {
  /** Returns the port of the credit server (credit.ts). */
  connect: [ConnectArgs, { creditPort: number }]
  reset: [ResetArgs, null]
  drain: [DrainArgs, SubscriberResult]
  close: [null, null]
}

let socket: Socket | null = null
let qos: 0 | 1 = 1
let deviceCount = 0
let tracker = new SeqTracker(0)
let hist = newHistogram()
let windowStart = Number.POSITIVE_INFINITY
let windowEnd = Number.POSITIVE_INFINITY
let received = 0
let inWindow = 0
let malformed = 0
const slab = new Slab()
const fields: PayloadFields = { device: 0, seq: 0, tUs: 0 }
/** Packet ids to PUBACK after the current read. */
const acks: number[] = []
let now = 0

/** Credit connections (credit.ts): which connection owns each device, and credits to send. */
let owners = new Int32Array(0)
const creditSockets: (Socket | null)[] = []
const creditBatches: number[][] = []
let creditServer: Server | null = null

function startCreditServer(): Promise<number> {
  const server = createServer((socket) => {
    socket.setNoDelay(true)
    const slot = creditSockets.length
    creditSockets.push(socket)
    creditBatches.push([])
    let hello = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      hello = Buffer.concat([hello, chunk])
      if (hello.length < 8) return
      const first = hello.readUInt32BE(0)
      const count = hello.readUInt32BE(4)
      owners.fill(slot, first, Math.min(owners.length, first + count))
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      creditSockets[slot] = null
      for (let i = 0; i < owners.length; i++) if (owners[i] === slot) owners[i] = -1
    })
  })
  creditServer = server
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  )
}

function flushCredits(): void {
  for (let slot = 0; slot < creditBatches.length; slot++) {
    const batch = creditBatches[slot]!
    if (batch.length === 0) continue
    const socket = creditSockets[slot]
    if (socket) {
      const buf = slab.alloc(batch.length * 4)
      for (let i = 0; i < batch.length; i++) buf.writeUInt32BE(batch[i]!, i * 4)
      socket.write(buf)
    }
    batch.length = 0
  }
}

function onPublish(q: number, packetId: number, buf: Buffer, start: number, end: number): void {
  if (q > 0) acks.push(packetId)
  received++
  if (now >= windowStart && now < windowEnd) inWindow++
  if (!readPayload(buf, start, end - start, fields)) {
    malformed++
    return
  }
  if (!tracker.record(fields.device, fields.seq)) return
  const owner = owners[fields.device] ?? -1
  if (owner >= 0) creditBatches[owner]!.push(fields.device)
  if (fields.tUs >= windowStart && fields.tUs < windowEnd) hist.recordValue(Math.max(1, now - fields.tUs))
}

/** Settles the CONNACK or SUBACK being waited for. */
let settle: ((err?: Error) => void) | undefined

function onControl(packet: Packet): void {
  if (packet.cmd !== 'connack' && packet.cmd !== 'suback') return
  const why = refusal(packet)
  settle?.(why === undefined ? undefined : new Error(`subscriber: ${why}`))
}

function expectReply(): Promise<void> {
  return new Promise((resolve, reject) => {
    settle = (err) => {
      settle = undefined
      if (err) reject(err)
      else resolve()
    }
  })
}

serve<SubscriberCommands>({
  async connect(args) {
    qos = args.qos
    deviceCount = args.devices
    tracker = new SeqTracker(deviceCount)
    owners = new Int32Array(deviceCount).fill(-1)
    const creditPort = creditServer
      ? (creditServer.address() as { port: number }).port
      : await startCreditServer()
    const stream = new MqttStream({ publish: onPublish, control: onControl })
    const s = connectBroker(args.broker)
    socket = s
    s.on('data', (chunk: Buffer) => {
      // One clock reading per read: every message in it arrived at the same moment.
      now = nowUs()
      stream.push(chunk)
      if (acks.length > 0) {
        const buf = slab.alloc(acks.length * PUBACK_LEN)
        for (let i = 0; i < acks.length; i++) writePuback(buf, i * PUBACK_LEN, acks[i]!)
        acks.length = 0
        s.write(buf)
      }
      flushCredits()
    })
    s.on('error', (err) => {
      process.stderr.write(`subscriber: ${err.message}\n`)
      settle?.(err)
    })
    const connack = expectReply()
    s.write(connectPacket(`bench-sub-${process.pid}`, args.broker))
    await connack
    const suback = expectReply()
    s.write(subscribePacket(1, args.topic, qos))
    await suback
    return { creditPort }
  },
  reset(args) {
    tracker = new SeqTracker(deviceCount)
    hist = newHistogram()
    received = inWindow = malformed = 0
    windowStart = args.windowStartUs
    windowEnd = args.windowEndUs
    return null
  },
  async drain(args) {
    let last = -1
    let still = 0
    while (tracker.totalUnique < args.expected && still < args.idleMs) {
      await sleep(10)
      if (received === last) still += 10
      else still = 0
      last = received
    }
    return {
      received,
      unique: tracker.totalUnique,
      duplicates: tracker.duplicates,
      outOfOrder: tracker.outOfOrder,
      malformed,
      inWindow,
      uniquePerDevice: Array.from(tracker.unique),
      histogram: encodeHistogram(hist),
    }
  },
  close() {
    socket?.end(DISCONNECT)
    socket = null
    return null
  },
})
