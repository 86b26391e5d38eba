/**
 * HyperTCP load generator: one process driving many device connections from one event loop.
 *
 * Written so that it costs little next to the gateway it loads:
 * - every device has its JSON_MESSAGE frame pre-encoded; a send copies it into a slab region and
 *   patches the msg_id, sequence number and timestamp digits in place (no JSON, no per-frame
 *   allocation);
 * - everything a device has to send after one read (next uplinks, answers to PINGs, downlink
 *   acknowledgements) leaves in one `write`, i.e. one syscall;
 * - frames are decoded with the gateway's own FrameDecoder on the device side (views, no copies).
 *
 * The device speaks the protocol exactly: LOGIN `1d 0001 <len> <token>`, reply `00 0001 0001 c8`;
 * JSON_MESSAGE `{"targetId":"server","payload":{…}}` acknowledged by RESPONSE(id, status in the
 * length field); it answers the gateway's PINGs ([HT-3.4]) and acknowledges downlinks ([HT-3.6]).
 *
 * The same devices can instead be direct MQTT clients (`init` with protocol `mqtt`): the baseline
 * of the login and downlink ratios. Each then connects to the broker, CONNECTs, SUBSCRIBEs to its
 * own `hypertcp/<id>/dn` at QoS 1 and counts as logged in at the SUBACK — through the same login
 * ramp (slots, source addresses, retries) and the same downlink publisher and closed loop as the
 * HyperTCP devices, so that only the protocol differs. Bare MQTT rather than one MQTT.js client
 * each, for the reason the device side is bare: on the 2-core bench machine an MQTT.js client cost
 * its process ~360 µs of CPU per CONNECT + SUBSCRIBE, a bare one ~145 µs (mostly the kernel's
 * socket setup, as for a HyperTCP device), and MQTT.js held a ramp to Mosquitto to ~3.7k logins/s
 * where bare clients made twice that: the ramp would have measured the generators. CONNECT and
 * SUBSCRIBE are encoded by mqtt-packet once per device before the ramp, CONNACK and SUBACK decoded
 * by it, PUBLISHes read in place (lib/mqtt-stream.ts).
 */

import { createConnection, type Socket } from 'node:net'
import type { Packet } from 'mqtt-packet'
import { Cmd } from '../../src/protocol/constants.js'
import { FrameDecoder } from '../../src/protocol/decoder.js'
import { nowUs, sleep } from '../lib/clock.js'
import { deviceId, deviceToken } from '../lib/gateway.js'
import { encodeHistogram, newHistogram } from '../lib/hist.js'
import { serve } from '../lib/ipc.js'
import {
  type BrokerAddress,
  connectBroker,
  connectPacket,
  DISCONNECT,
  MqttStream,
  PUBACK_LEN,
  type PublishTemplate,
  publishTemplate,
  refusal,
  subscribePacket,
  writePuback,
} from '../lib/mqtt-stream.js'
import { PAYLOAD_LEN, type PayloadFields, patchPayload, readPayload, writePayload } from '../lib/payload.js'
import { SeqTracker } from '../lib/seqtrack.js'
import { Slab } from '../lib/slab.js'
import { settle } from '../lib/tally.js'
import { connectCredits } from './credit.js'
import { OpenLoop } from './open-loop.js'

export interface InitArgs {
  /** The gateway's HyperTCP listener, or (protocol `mqtt`) the broker. */
  host: string
  port: number
  /** Global index of this worker's first device, and how many it drives. */
  first: number
  count: number
  /** `hypertcp` (default): devices of the gateway; `mqtt`: direct MQTT clients of the broker. */
  protocol?: 'hypertcp' | 'mqtt'
  /** `mqtt`: the broker's credentials, if any. */
  username?: string
  password?: string
}

export interface LoginArgs {
  /** Logins in progress at once (a ramp, not a storm: measures the gateway's login rate). */
  concurrency: number
  timeoutMs: number
}

export interface LoginResult {
  online: number
  failed: number
  attempts: number
  /** When the first connection attempt and the last successful login happened (µs, shared clock). */
  startUs: number
  lastLoginUs: number
}

export interface Status {
  online: number
  logins: number
  loginFailures: number
  connectErrors: number
  closes: number
  /** Closes by what came before them: an error's code, or none (`before connect`, `connected`). */
  closesBy: Record<string, number>
  pingsAnswered: number
  lastLoginUs: number
}

export interface UplinkArgs {
  /**
   * closed: each device keeps `window` messages unacknowledged (the sender's acknowledgements pace
   * it: QoS 1); e2e: `window` messages not yet received by the subscriber (its credits pace it:
   * QoS 0, see credit.ts); open: `rate` msgs/s from this worker.
   */
  mode: 'closed' | 'e2e' | 'open'
  window: number
  rate: number
  /** The subscriber's credit port (mode e2e). */
  creditPort?: number
}

export interface UplinkResult {
  sent: number
  acked: number
  rejected: number
  /** Messages still unacknowledged when the drain gave up (0 in a sound run). */
  unacked: number
  /** Acknowledged (status 0) per device, in this worker's order. */
  ackedPerDevice: number[]
}

export interface DownlinkArgs {
  /** Where the publisher connects: the broker the gateway (or the direct clients) subscribe at. */
  broker: BrokerAddress
  /**
   * closed: `window` downlinks outstanding per device, the next published when the device has
   * received one; open: `rate` msgs/s from this worker, spread over its devices.
   */
  mode: 'closed' | 'open'
  window: number
  rate: number
  /** Latency is recorded for messages published within [startUs, endUs). */
  windowStartUs: number
  windowEndUs: number
}

export interface DownlinkResult {
  published: number
  pubacked: number
  received: number
  receivedInWindow: number
  duplicates: number
  outOfOrder: number
  malformed: number
  histogram: string
}

export interface ChurnArgs {
  /** Devices cycling at once (each: connect, log in, disconnect, again). */
  concurrency: number
  cycles: number
}

export interface ChurnStatus {
  cycles: number
  failures: number
  running: boolean
}

export type DeviceCommands = {
  init: [InitArgs, null]
  login: [LoginArgs, LoginResult]
  /** `retryCapMs`: the longest wait between failed attempts (default 1 s). */
  reconnect: [{ enabled: boolean; retryCapMs?: number }, null]
  status: [null, Status]
  uplinkStart: [UplinkArgs, null]
  uplinkStop: [null, UplinkResult]
  downlinkStart: [DownlinkArgs, null]
  downlinkStop: [null, DownlinkResult]
  churnStart: [ChurnArgs, null]
  churnStatus: [null, ChurnStatus]
  closeAll: [null, null]
}

const HEADER = 5
const UPLINK_PREFIX = '{"targetId":"server","payload":'
const FRAME_LEN = HEADER + UPLINK_PREFIX.length + PAYLOAD_LEN + 1
const PAYLOAD_AT = HEADER + UPLINK_PREFIX.length
/** What the gateway puts around a plain downlink payload ([HT-5.2]). */
const DOWNLINK_PREFIX_LEN = '{"from":"server","payload":'.length

class Device {
  readonly index: number
  /** HyperTCP: the LOGIN frame; MQTT: the CONNECT packet. */
  readonly login: Buffer
  /** MQTT: the SUBSCRIBE to the device's own down topic, sent on the CONNACK; HyperTCP: null. */
  readonly subscribe: Buffer | null
  readonly template: Buffer
  socket: Socket | null = null
  decoder: FrameDecoder | null = null
  online = false
  connecting = false
  msgId = 0
  seq = 0
  inflight = 0
  toSend = 0
  sent = 0
  acked = 0
  rejected = 0
  /** msg_ids of gateway frames to acknowledge with the next write. */
  readonly replies: number[] = []
  attempts = 0
  retryTimer: NodeJS.Timeout | undefined
  dirty = false
  /** Holds one of the login ramp's slots. */
  inRamp = false
  /** Downlinks to publish for this device with the publisher's next write. */
  dnToPublish = 0

  /**
   * The device's own loopback address (127.1.x.y), as field devices each have their own IP. From
   * one address, the kernel's search for a free ephemeral port in connect() grows with the
   * connections already open: at 19,700 it took 60 % of the generators' CPU and they, not the
   * gateway, limited the login rate.
   */
  readonly source: string

  /** `mqtt`: the broker it is a direct client of; null: a HyperTCP device. */
  constructor(index: number, mqtt: BrokerAddress | null) {
    this.index = index
    this.source = `127.1.${(index >> 8) & 255}.${index & 255}`
    if (mqtt !== null) {
      this.login = connectPacket(`bench-mqtt-${deviceId(index)}`, mqtt)
      this.subscribe = subscribePacket(1, `hypertcp/${deviceId(index)}/dn`, 1)
    } else {
      const token = Buffer.from(deviceToken(index))
      this.login = Buffer.alloc(HEADER + token.length)
      this.login[0] = Cmd.LOGIN
      this.login.writeUInt16BE(1, 1)
      this.login.writeUInt16BE(token.length, 3)
      token.copy(this.login, HEADER)
      this.subscribe = null
    }
    this.template = Buffer.alloc(FRAME_LEN)
    this.template[0] = Cmd.JSON_MESSAGE
    this.template.writeUInt16BE(FRAME_LEN - HEADER, 3)
    this.template.write(UPLINK_PREFIX, HEADER, 'latin1')
    writePayload(this.template, PAYLOAD_AT, index, 0, 0)
    this.template[FRAME_LEN - 1] = 0x7d
  }
}

let host = '127.0.0.1'
let port = 0
/** Direct MQTT clients instead of HyperTCP devices: the broker they connect to. */
let broker: BrokerAddress | null = null
let devices: Device[] = []
const slab = new Slab()

let online = 0
let logins = 0
let loginFailures = 0
let connectErrors = 0
let closes = 0
const closesBy: Record<string, number> = {}
let pingsAnswered = 0
let lastLoginUs = 0
/** Devices reconnect by themselves after losing the connection (the restart measurement). */
let reconnect = false
/** The longest wait between a device's failed attempts. */
let retryCapMs = 1000
/** Login ramp: devices waiting for a slot, logins in progress, the slot count. */
let rampQueue: Device[] = []
let rampActive = 0
let rampConcurrency = 0
let rampDone: (() => void) | undefined

let uplinkMode: 'off' | 'closed' | 'e2e' | 'open' = 'off'
let creditSocket: Socket | undefined
const creditDirty: Device[] = []
let openLoop: OpenLoop<Device> | undefined

function connect(dev: Device): void {
  if (broker !== null) return connectMqtt(dev, broker)
  dev.retryTimer = undefined
  dev.connecting = true
  dev.attempts++
  dev.msgId = 0
  const socket = createConnection(
    host === '127.0.0.1'
      ? { host, port, noDelay: true, localAddress: dev.source }
      : { host, port, noDelay: true },
  )
  dev.socket = socket
  const decoder = new FrameDecoder(
    65_535,
    (type, msgId, body, length) => onFrame(dev, type, msgId, body, length),
    () => socket.destroy(),
    'device',
  )
  dev.decoder = decoder
  let why = 'before connect'
  socket.on('connect', () => {
    why = 'connected'
    decoder.expectLoginReply = true
    socket.write(dev.login)
  })
  socket.on('data', (chunk: Buffer) => {
    why = dev.online ? 'logged in' : 'answered'
    decoder.push(chunk)
    if (dev.toSend > 0 || dev.replies.length > 0) flush(dev)
  })
  socket.on('error', (err: NodeJS.ErrnoException) => {
    why = `${why}: ${err.code ?? err.message}`
    if (!dev.online) connectErrors++
  })
  socket.on('close', () => {
    closesBy[why] = (closesBy[why] ?? 0) + 1
    onClose(dev, socket)
  })
}

/** A direct MQTT client's login: TCP connect, CONNECT, CONNACK, SUBSCRIBE, SUBACK. */
function connectMqtt(dev: Device, to: BrokerAddress): void {
  dev.retryTimer = undefined
  dev.connecting = true
  dev.attempts++
  const socket = connectBroker(to, to.host === '127.0.0.1' ? dev.source : undefined)
  dev.socket = socket
  const stream = new MqttStream({
    publish: (_qos, packetId, buf, start, end) => {
      if (packetId !== 0) dev.replies.push(packetId)
      onDownlink(dev, buf, start, end - start)
    },
    control: (packet) => onMqttControl(dev, socket, packet),
  })
  socket.on('connect', () => socket.write(dev.login))
  socket.on('data', (chunk: Buffer) => {
    stream.push(chunk)
    if (dev.replies.length > 0) flushPubacks(dev)
  })
  socket.on('error', () => {
    if (!dev.online) connectErrors++
  })
  socket.on('close', () => onClose(dev, socket))
}

function onMqttControl(dev: Device, socket: Socket, packet: Packet): void {
  if (packet.cmd === 'connack') {
    if (refusal(packet) === undefined) {
      socket.write(dev.subscribe!)
      return
    }
  } else if (packet.cmd !== 'suback' || !dev.connecting) {
    return
  }
  dev.connecting = false
  if (packet.cmd === 'suback' && refusal(packet) === undefined) loggedIn(dev)
  else {
    loginFailures++
    socket.destroy()
  }
  loginDone(dev)
}

/** A direct MQTT client's PUBACKs for the downlinks of one read, in one write. */
function flushPubacks(dev: Device): void {
  const r = dev.replies.length
  const socket = dev.socket
  if (socket !== null) {
    const buf = slab.alloc(r * PUBACK_LEN)
    for (let i = 0; i < r; i++) writePuback(buf, i * PUBACK_LEN, dev.replies[i]!)
    socket.write(buf)
  }
  dev.replies.length = 0
}

function onClose(dev: Device, socket: Socket): void {
  if (dev.socket !== socket) return
  dev.socket = null
  dev.decoder = null
  closes++
  const wasOnline = dev.online
  dev.inflight = 0
  dev.toSend = 0
  dev.replies.length = 0
  if (wasOnline) {
    dev.online = false
    online--
  }
  if (dev.connecting) {
    dev.connecting = false
    loginDone(dev)
  }
  if (churning) return churnNext(dev, wasOnline)
  if (reconnect || (!wasOnline && rampDone !== undefined)) scheduleRetry(dev, wasOnline)
}

/**
 * When a device tries again: after losing a live connection, at a random moment within 500 ms
 * (devices do not all notice at the same instant); after a failed attempt, with exponential
 * backoff capped at `retryCapMs` (1 s; the project's firmware caps at 30 s), jittered — what
 * well-behaved firmware does.
 */
function scheduleRetry(dev: Device, wasOnline: boolean): void {
  if (dev.retryTimer !== undefined) return
  const delay = wasOnline
    ? Math.random() * 500
    : Math.min(retryCapMs, 50 * 2 ** Math.min(dev.attempts, 10)) * (0.5 + Math.random() / 2)
  dev.retryTimer = setTimeout(connect, delay, dev)
}

/** A login attempt ended (either way): frees its ramp slot. A failed device retries on its own timer. */
function loginDone(dev: Device): void {
  if (dev.inRamp) {
    dev.inRamp = false
    rampActive--
  }
  if (rampDone !== undefined) pumpRamp()
}

function pumpRamp(): void {
  while (rampActive < rampConcurrency && rampQueue.length > 0) {
    const dev = rampQueue.pop()!
    if (dev.online || dev.socket !== null) continue
    rampActive++
    dev.inRamp = true
    connect(dev)
  }
  if (rampDone !== undefined && online === devices.length) {
    const done = rampDone
    rampDone = undefined
    done()
  }
}

function onFrame(dev: Device, type: number, msgId: number, body: Buffer, length: number): undefined {
  switch (type) {
    case Cmd.RESPONSE:
      if (dev.connecting) {
        // The login reply ([HT-2.1]): one status byte.
        dev.connecting = false
        if (body.length === 1 && body[0] === 200) {
          loggedIn(dev)
        } else {
          loginFailures++
        }
        loginDone(dev)
        return
      }
      // An uplink acknowledgement: the status is the length field ([HT-2.7]).
      dev.inflight--
      if (length === 0) dev.acked++
      else dev.rejected++
      if (uplinkMode === 'closed') dev.toSend++
      return
    case Cmd.PING:
      dev.replies.push(msgId)
      pingsAnswered++
      return
    case Cmd.JSON_MESSAGE:
    case Cmd.BROADCAST:
      dev.replies.push(msgId)
      onDownlink(dev, body, DOWNLINK_PREFIX_LEN, body.length - DOWNLINK_PREFIX_LEN - 1)
      return
    default:
      return
  }
}

function loggedIn(dev: Device): void {
  dev.online = true
  dev.attempts = 0
  online++
  logins++
  lastLoginUs = nowUs()
  if (churning) churnLoggedIn(dev)
}

/** Everything the device has to send, in one write. */
function flush(dev: Device): void {
  const n = dev.toSend
  const r = dev.replies.length
  dev.toSend = 0
  const socket = dev.socket
  if (socket === null || !dev.online) {
    dev.replies.length = 0
    return
  }
  const buf = slab.alloc(n * FRAME_LEN + r * HEADER)
  let off = 0
  if (n > 0) {
    const t = nowUs()
    for (let i = 0; i < n; i++) {
      dev.template.copy(buf, off)
      let id = dev.msgId + 1
      if (id > 0xffff) id = 1 // [HT-1.5] skip 0 on wrap
      dev.msgId = id
      buf[off + 1] = id >> 8
      buf[off + 2] = id & 0xff
      patchPayload(buf, off + PAYLOAD_AT, ++dev.seq, t)
      off += FRAME_LEN
    }
    dev.inflight += n
    dev.sent += n
  }
  for (let i = 0; i < r; i++) {
    const id = dev.replies[i]!
    buf[off] = Cmd.RESPONSE
    buf[off + 1] = id >> 8
    buf[off + 2] = id & 0xff
    buf[off + 3] = 0
    buf[off + 4] = 0
    off += HEADER
  }
  dev.replies.length = 0
  socket.write(buf)
}

function onCredit(k: number): void {
  const dev = devices[k]
  if (dev === undefined || uplinkMode !== 'e2e') return
  dev.toSend++
  if (!dev.dirty) {
    dev.dirty = true
    creditDirty.push(dev)
  }
}

function flushCredits(): void {
  for (const dev of creditDirty) {
    dev.dirty = false
    flush(dev)
  }
  creditDirty.length = 0
}

// ---- downlink: an MQTT publisher in this process, closed loop on delivery ----

let dnSocket: Socket | null = null
/** Per device: its PUBLISH to `hypertcp/<id>/dn` (offsets differ with the id's length). */
let dnTemplates: PublishTemplate[] = []
let dnPacketId = 0
let dnSeq: Float64Array = new Float64Array(0)
let dnRunning = false
let dnOpenLoop: OpenLoop<Device> | undefined
let dnWindowStart = 0
let dnWindowEnd = 0
let dnPublished = 0
let dnPubacked = 0
let dnReceived = 0
let dnInWindow = 0
let dnMalformed = 0
let dnTracker = new SeqTracker(0)
let dnHist = newHistogram()
let dnDirty: Device[] = []
let dnFlushScheduled = false
const fields: PayloadFields = { device: 0, seq: 0, tUs: 0 }

/** A downlink's payload `buf[off, off + len)` reached `dev` (through the gateway or directly). */
function onDownlink(dev: Device, buf: Buffer, off: number, len: number): void {
  if (!readPayload(buf, off, len, fields)) {
    dnMalformed++
    return
  }
  dnReceived++
  dnTracker.record(fields.device - devices[0]!.index, fields.seq)
  if (fields.tUs >= dnWindowStart && fields.tUs < dnWindowEnd) {
    dnInWindow++
    dnHist.recordValue(Math.max(1, nowUs() - fields.tUs))
  }
  if (dnRunning) queueDownlink(dev, 1)
}

function queueDownlink(dev: Device, n: number): void {
  dev.dnToPublish += n
  if (dev.dnToPublish === n) dnDirty.push(dev)
  if (!dnFlushScheduled) {
    dnFlushScheduled = true
    setImmediate(flushDownlinks)
  }
}

/** All downlinks queued during this event-loop turn leave in one write on the publisher socket. */
function flushDownlinks(): void {
  dnFlushScheduled = false
  const socket = dnSocket
  const dirty = dnDirty
  dnDirty = []
  if (socket === null) return
  let total = 0
  for (const dev of dirty) total += dev.dnToPublish
  if (total === 0) return
  const base = devices[0]!.index
  let bytes = 0
  for (const dev of dirty) bytes += dev.dnToPublish * dnTemplates[dev.index - base]!.bytes.length
  const buf = slab.alloc(bytes)
  const t = nowUs()
  let off = 0
  for (const dev of dirty) {
    const k = dev.index - base
    const tpl = dnTemplates[k]!
    for (let i = 0; i < dev.dnToPublish; i++) {
      tpl.bytes.copy(buf, off)
      dnPacketId = dnPacketId >= 0xffff ? 1 : dnPacketId + 1
      buf[off + tpl.packetIdOffset] = dnPacketId >> 8
      buf[off + tpl.packetIdOffset + 1] = dnPacketId & 0xff
      dnSeq[k] = dnSeq[k]! + 1
      patchPayload(buf, off + tpl.payloadOffset, dnSeq[k]!, t)
      off += tpl.bytes.length
    }
    dnPublished += dev.dnToPublish
    dev.dnToPublish = 0
  }
  socket.write(buf)
}

async function downlinkStart(args: DownlinkArgs): Promise<null> {
  dnTemplates = devices.map((dev) => {
    const tpl = publishTemplate(`hypertcp/${deviceId(dev.index)}/dn`, PAYLOAD_LEN, 1)
    writePayload(tpl.bytes, tpl.payloadOffset, dev.index, 0, 0)
    return tpl
  })
  dnSeq = new Float64Array(devices.length)
  dnTracker = new SeqTracker(devices.length)
  dnHist = newHistogram()
  dnPublished = dnPubacked = dnReceived = dnInWindow = dnMalformed = 0
  dnWindowStart = args.windowStartUs
  dnWindowEnd = args.windowEndUs
  await new Promise<void>((resolve, reject) => {
    const socket = connectBroker(args.broker)
    dnSocket = socket
    const stream = new MqttStream({
      puback: () => {
        dnPubacked++
      },
      control: (packet) => {
        if (packet.cmd !== 'connack') return
        const why = refusal(packet)
        if (why === undefined) resolve()
        else reject(new Error(`downlink publisher: ${why}`))
      },
    })
    socket.on('data', (chunk: Buffer) => stream.push(chunk))
    socket.once('error', reject)
    socket.write(connectPacket(`bench-dn-${devices[0]!.index}-${process.pid}`, args.broker))
  })
  if (args.mode === 'open') {
    // The open loop counts due messages in `toSend`; they go out with the publisher's next write.
    dnOpenLoop = new OpenLoop(devices, args.rate, (dev) => {
      const n = dev.toSend
      dev.toSend = 0
      if (n > 0 && dev.online) queueDownlink(dev, n)
    })
    return null
  }
  dnRunning = true
  for (const dev of devices) if (dev.online) queueDownlink(dev, args.window)
  return null
}

async function downlinkStop(): Promise<DownlinkResult> {
  dnRunning = false
  dnOpenLoop?.stop()
  dnOpenLoop = undefined
  // What is queued goes out now and is waited for below. Left to its setImmediate it could find the
  // socket gone: when the stop arrives with every publish so far delivered and the next ones still
  // queued (the closed loop's usual state between a read and its flush), the wait below ends at
  // once; their devices then kept a count that no later queueDownlink would flush, and the next run
  // published nothing to them.
  flushDownlinks()
  // Wait for what is in flight: every publish acknowledged by the broker and delivered, or 3 s
  // without progress (a downlink the gateway dropped never arrives: at most once, [HT-5.2]).
  let last = -1
  let still = 0
  while (still < 3000 && (dnPubacked < dnPublished || dnReceived < dnPublished)) {
    await sleep(20)
    if (dnReceived === last) still += 20
    else still = 0
    last = dnReceived
  }
  const socket = dnSocket
  dnSocket = null
  socket?.end(DISCONNECT)
  return {
    published: dnPublished,
    pubacked: dnPubacked,
    received: dnReceived,
    receivedInWindow: dnInWindow,
    duplicates: dnTracker.duplicates,
    outOfOrder: dnTracker.outOfOrder,
    malformed: dnMalformed,
    histogram: encodeHistogram(dnHist),
  }
}

// ---- churn (soak): connect, log in, disconnect, again ----

let churning = false
let churnTarget = 0
let churnCycles = 0
let churnFailures = 0
/** Devices still cycling; each stops once the target is reached. */
let churnSlots = 0

function churnLoggedIn(dev: Device): void {
  churnCycles++
  dev.socket?.end()
}

function churnNext(dev: Device, wasOnline: boolean): void {
  if (!wasOnline) churnFailures++
  if (churnCycles >= churnTarget) {
    churnSlots--
    return
  }
  if (wasOnline) setImmediate(connect, dev)
  else scheduleRetry(dev, false)
}

serve<DeviceCommands>({
  init(args) {
    host = args.host
    port = args.port
    const { username, password } = args
    broker =
      args.protocol === 'mqtt'
        ? {
            host,
            port,
            ...(username !== undefined ? { username } : {}),
            ...(password !== undefined ? { password } : {}),
          }
        : null
    devices = Array.from({ length: args.count }, (_, i) => new Device(args.first + i, broker))
    return null
  },
  login(args) {
    const startUs = nowUs()
    rampConcurrency = args.concurrency
    rampActive = 0
    rampQueue = devices.filter((d) => !d.online).reverse()
    const before = logins
    const failedBefore = loginFailures + connectErrors
    return new Promise<LoginResult>((resolve) => {
      const finish = () => {
        clearTimeout(timer)
        rampDone = undefined
        rampQueue = []
        resolve({
          online,
          failed: loginFailures + connectErrors - failedBefore,
          attempts: logins - before,
          startUs,
          lastLoginUs,
        })
      }
      const timer = setTimeout(finish, args.timeoutMs)
      rampDone = finish
      pumpRamp()
    })
  },
  reconnect(args) {
    reconnect = args.enabled
    retryCapMs = args.retryCapMs ?? 1000
    return null
  },
  status() {
    return { online, logins, loginFailures, connectErrors, closes, closesBy, pingsAnswered, lastLoginUs }
  },
  async uplinkStart(args) {
    for (const dev of devices) {
      dev.seq = 0
      dev.sent = dev.acked = dev.rejected = 0
    }
    if (args.mode === 'e2e') {
      creditSocket = await connectCredits(
        args.creditPort!,
        devices[0]!.index,
        devices.length,
        onCredit,
        flushCredits,
      )
    }
    if (args.mode === 'closed' || args.mode === 'e2e') {
      uplinkMode = args.mode
      for (const dev of devices) {
        dev.toSend = args.window
        flush(dev)
      }
    } else {
      uplinkMode = 'open'
      openLoop = new OpenLoop(devices, args.rate, flush)
    }
    return null
  },
  async uplinkStop() {
    uplinkMode = 'off'
    openLoop?.stop()
    openLoop = undefined
    creditSocket?.destroy()
    creditSocket = undefined
    return settle(devices)
  },
  downlinkStart,
  downlinkStop,
  churnStart(args) {
    churning = true
    churnTarget = args.cycles
    churnCycles = churnFailures = 0
    const slots = devices.slice(0, args.concurrency)
    churnSlots = slots.length
    for (const dev of slots) connect(dev)
    return null
  },
  churnStatus() {
    if (churnSlots === 0) churning = false
    return { cycles: churnCycles, failures: churnFailures, running: churnSlots > 0 }
  },
  closeAll() {
    reconnect = false
    churning = false
    for (const dev of devices) {
      clearTimeout(dev.retryTimer)
      dev.retryTimer = undefined
      // A reset, not a FIN: the next scenario reconnects tens of thousands of devices, and the
      // loopback's ephemeral ports must not all sit in TIME_WAIT meanwhile.
      const socket = dev.socket
      if (socket === null) continue
      // Closed now, not at the 'close' events: the next command may be an init and a login ramp
      // (a switch between HyperTCP devices and direct MQTT clients), whose `online` count must
      // not still hold these devices, nor their closes schedule retries of them.
      onClose(dev, socket)
      socket.resetAndDestroy()
    }
    return null
  },
})
