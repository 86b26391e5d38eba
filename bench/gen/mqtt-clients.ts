/**
 * The direct-MQTT baseline: the same devices as plain MQTT clients, one connection each, publishing
 * the same payloads on the same topics (`hypertcp/d<i>/up`) at the same QoS to the same broker.
 *
 * Two kinds of client:
 * - `mqttjs`: one MQTT.js client per device — what the issue compares against;
 * - `raw`: the same connections driven like the HyperTCP generator (PUBLISH packets encoded once by
 *   mqtt-packet and patched in place, PUBACKs read in place, one write per read), to show how
 *   much of the baseline is MQTT.js itself.
 */

import type { Socket } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import { nowUs } from '../lib/clock.js'
import { deviceId } from '../lib/gateway.js'
import { serve } from '../lib/ipc.js'
import {
  type BrokerAddress,
  connectBroker,
  connectPacket,
  MqttStream,
  publishTemplate,
  refusal,
} from '../lib/mqtt-stream.js'
import { PAYLOAD_LEN, patchPayload, writePayload } from '../lib/payload.js'
import { Slab } from '../lib/slab.js'
import { settle } from '../lib/tally.js'
import { connectCredits } from './credit.js'
import type { UplinkArgs, UplinkResult } from './devices.js'
import { OpenLoop } from './open-loop.js'

export type ClientKind = 'mqttjs' | 'raw'

export interface ClientsInit {
  broker: BrokerAddress
  first: number
  count: number
  kind: ClientKind
  qos: 0 | 1
}

export type MqttClientCommands = {
  init: [ClientsInit, null]
  uplinkStart: [UplinkArgs, null]
  uplinkStop: [null, UplinkResult]
  closeAll: [null, null]
}

abstract class Client {
  readonly index: number
  readonly topic: string
  inflight = 0
  toSend = 0
  dirty = false
  seq = 0
  sent = 0
  acked = 0
  rejected = 0

  constructor(index: number) {
    this.index = index
    this.topic = `hypertcp/${deviceId(index)}/up`
  }

  abstract connect(broker: BrokerAddress): Promise<void>
  /** Sends `toSend` messages. */
  abstract flush(): void
  abstract close(): void

  protected settled(ok: boolean): void {
    this.inflight--
    if (ok) this.acked++
    else this.rejected++
    if (mode === 'closed') {
      this.toSend++
      markDirty(this)
    }
  }
}

class MqttJsClient extends Client {
  private client: MqttClient | undefined
  private readonly payload = Buffer.alloc(PAYLOAD_LEN)
  private readonly onPublished = (err?: Error) => this.settled(!err)

  async connect(broker: BrokerAddress): Promise<void> {
    writePayload(this.payload, 0, this.index, 0, 0)
    const client = mqtt.connect({
      protocol: 'mqtt',
      host: broker.host,
      port: broker.port,
      ...(broker.username !== undefined ? { username: broker.username } : {}),
      ...(broker.password !== undefined ? { password: broker.password } : {}),
      clientId: `bench-direct-${this.index}`,
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
    })
    this.client = client
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
    })
  }

  flush(): void {
    const n = this.toSend
    this.toSend = 0
    const t = nowUs()
    for (let i = 0; i < n; i++) {
      // MQTT.js keeps a reference to the payload until it is written: a fresh region each time.
      const payload = slab.alloc(PAYLOAD_LEN)
      this.payload.copy(payload)
      patchPayload(payload, 0, ++this.seq, t)
      this.inflight++
      this.sent++
      this.client!.publish(this.topic, payload, { qos }, this.onPublished)
    }
  }

  close(): void {
    this.client?.end(true)
  }
}

class RawClient extends Client {
  private socket: Socket | undefined
  private template: Buffer = Buffer.alloc(0)
  private packetIdOffset = 0
  private payloadOffset = 0
  private packetId = 0

  async connect(broker: BrokerAddress): Promise<void> {
    const tpl = publishTemplate(this.topic, PAYLOAD_LEN, qos)
    writePayload(tpl.bytes, tpl.payloadOffset, this.index, 0, 0)
    this.template = tpl.bytes
    this.packetIdOffset = tpl.packetIdOffset
    this.payloadOffset = tpl.payloadOffset
    const socket = connectBroker(broker)
    this.socket = socket
    await new Promise<void>((resolve, reject) => {
      const stream = new MqttStream({
        puback: () => this.settled(true),
        control: (packet) => {
          if (packet.cmd !== 'connack') return
          const why = refusal(packet)
          if (why === undefined) resolve()
          else reject(new Error(`raw client ${this.index}: ${why}`))
        },
      })
      socket.on('data', (chunk: Buffer) => {
        stream.push(chunk)
        if (this.toSend > 0) this.flush()
      })
      socket.once('error', reject)
      socket.write(connectPacket(`bench-raw-${this.index}`, broker, 60))
    })
  }

  flush(): void {
    const n = this.toSend
    this.toSend = 0
    if (n === 0) return
    const size = this.template.length
    const buf = slab.alloc(n * size)
    const t = nowUs()
    for (let i = 0, off = 0; i < n; i++, off += size) {
      this.template.copy(buf, off)
      if (this.packetIdOffset >= 0) {
        this.packetId = this.packetId >= 0xffff ? 1 : this.packetId + 1
        buf[off + this.packetIdOffset] = this.packetId >> 8
        buf[off + this.packetIdOffset + 1] = this.packetId & 0xff
      }
      patchPayload(buf, off + this.payloadOffset, ++this.seq, t)
    }
    this.inflight += n
    this.sent += n
    this.socket!.write(buf)
    // QoS 0 has no acknowledgement: the message counts as settled once handed to the socket, as
    // MQTT.js does; the subscriber's credits pace the loop (mode e2e).
    if (qos === 0) {
      this.inflight -= n
      this.acked += n
    }
  }

  close(): void {
    this.socket?.destroy()
  }
}

const slab = new Slab()
let clients: Client[] = []
let qos: 0 | 1 = 1
let mode: 'off' | 'closed' | 'e2e' | 'open' = 'off'
let creditSocket: Socket | undefined
let openLoop: OpenLoop<Client> | undefined
let dirty: Client[] = []
let flushScheduled = false

/**
 * Acks arrive inside MQTT.js's packet handling (and for QoS 0 synchronously inside `publish`), so
 * the next sends are collected and issued once per event-loop turn.
 */
function markDirty(c: Client): void {
  if (!c.dirty) {
    c.dirty = true
    dirty.push(c)
  }
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flushDirty)
  }
}

function flushDirty(): void {
  flushScheduled = false
  const list = dirty
  dirty = []
  for (const c of list) {
    c.dirty = false
    if (mode !== 'off' && c.toSend > 0) c.flush()
  }
}

serve<MqttClientCommands>({
  async init(args) {
    qos = args.qos
    clients = Array.from({ length: args.count }, (_, i) =>
      args.kind === 'mqttjs' ? new MqttJsClient(args.first + i) : new RawClient(args.first + i),
    )
    // A few at a time: a burst of hundreds of CONNECTs is not what is being measured.
    for (let i = 0; i < clients.length; i += 50) {
      await Promise.all(clients.slice(i, i + 50).map((c) => c.connect(args.broker)))
    }
    return null
  },
  async uplinkStart(args) {
    for (const c of clients) {
      c.seq = c.sent = c.acked = c.rejected = 0
    }
    if (args.mode === 'e2e') {
      const first = clients[0]!.index
      creditSocket = await connectCredits(
        args.creditPort!,
        first,
        clients.length,
        (k) => {
          const c = clients[k]
          if (c === undefined || mode !== 'e2e') return
          c.toSend++
          markDirty(c)
        },
        () => {},
      )
    }
    if (args.mode === 'closed' || args.mode === 'e2e') {
      mode = args.mode
      for (const c of clients) {
        c.toSend = args.window
        c.flush()
      }
    } else {
      mode = 'open'
      openLoop = new OpenLoop(clients, args.rate, (c) => c.flush())
    }
    return null
  },
  async uplinkStop() {
    mode = 'off'
    openLoop?.stop()
    openLoop = undefined
    creditSocket?.destroy()
    creditSocket = undefined
    for (const c of clients) c.toSend = 0
    return settle(clients)
  },
  closeAll() {
    for (const c of clients) c.close()
    return null
  },
})
