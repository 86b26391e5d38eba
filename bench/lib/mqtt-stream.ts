/**
 * MQTT for the benchmark's own bare clients (the counting subscriber, the downlink publisher, the
 * raw direct publishers, the direct login and downlink clients), on mqtt-packet: every packet is
 * encoded by `mqttPacket.generate` — data packets once, as templates patched in place before each
 * send — and every control packet (CONNACK, SUBACK, PINGRESP …) is decoded by its parser.
 *
 * Only the data path is read here, from views of the input at fixed offsets: the fixed header's
 * remaining length (to split the stream into packets), a PUBLISH's topic length, packet id and
 * payload, a PUBACK's packet id. mqtt-packet's parser costs about 1 µs per PUBLISH and 0.6 µs per
 * PUBACK on the 2-core bench machine (a packet object, a topic string, a BufferList per packet),
 * reading them here about 0.01 µs: at the 100–200k msgs/s the subscriber, the publishers and the
 * downlink clients see, mqtt-packet would take a fifth of a core from the very machine whose
 * throughput is measured, and the receiving end would start to be what limits the runs.
 *
 * MQTT 3.1.1 throughout: its PUBLISH has no properties, so the packet id sits right before the
 * payload.
 */
import { createConnection, type Socket } from 'node:net'
import mqttPacket, { type IConnackPacket, type ISubackPacket, type Packet, type QoS } from 'mqtt-packet'
import { PacketReader } from '../../src/adapters/broker-link/packet-reader.js'
import { redactUrl } from '../../src/config/redact.js'

const OPTS = { protocolVersion: 4 } as const

/** Where a bare client connects, and how it logs in (from the broker URL's user info). */
export interface BrokerAddress {
  host: string
  port: number
  username?: string
  password?: string
}

export { withoutCredentials } from '../../src/config/redact.js'
/** `mqtt://[user[:password]@]host[:port]` → where to connect (plain TCP: the bare clients speak no TLS). */
export { redactUrl }

export function brokerAddress(url: string): BrokerAddress {
  const u = new URL(url)
  if (u.protocol !== 'mqtt:') throw new Error(`${redactUrl(url)}: the benchmark's clients speak mqtt:// only`)
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 1883 : Number(u.port),
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
  }
}

/** A TCP connection to the broker, Nagle off (every client of the benchmark writes small packets). */
export function connectBroker(broker: BrokerAddress, localAddress?: string): Socket {
  return createConnection(
    localAddress === undefined
      ? { host: broker.host, port: broker.port, noDelay: true }
      : { host: broker.host, port: broker.port, noDelay: true, localAddress },
  )
}

/** mqtt-packet, MQTT 3.1.1. Templates and control packets only: never once per message. */
export function encode(packet: Packet): Buffer {
  return mqttPacket.generate(packet, OPTS)
}

/** CONNECT, clean session, with the broker's credentials if any. `keepalive` 0 switches the broker's keepalive check off. */
export function connectPacket(clientId: string, broker: BrokerAddress, keepalive = 0): Buffer {
  return encode({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive,
    ...(broker.username !== undefined ? { username: broker.username } : {}),
    ...(broker.password !== undefined ? { password: Buffer.from(broker.password) } : {}),
  })
}

export function subscribePacket(messageId: number, topic: string, qos: QoS): Buffer {
  return encode({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] })
}

export const DISCONNECT: Buffer = encode({ cmd: 'disconnect' })

/** What a CONNACK or SUBACK said, as an error message, or undefined when it accepted. */
export function refusal(packet: IConnackPacket | ISubackPacket): string | undefined {
  if (packet.cmd === 'connack') {
    const code = packet.returnCode ?? packet.reasonCode ?? 0
    return code === 0 ? undefined : `CONNACK return code ${code}`
  }
  const bad = packet.granted.find((g) => typeof g !== 'number' || g >= 0x80)
  return bad === undefined ? undefined : `SUBACK refused (${JSON.stringify(bad)})`
}

const PUBACK = encode({ cmd: 'puback', messageId: 0 })

/** Bytes of one PUBACK. */
export const PUBACK_LEN = PUBACK.length

/** Writes mqtt-packet's PUBACK with `packetId` at `off` (PUBACK_LEN bytes). */
export function writePuback(buf: Buffer, off: number, packetId: number): void {
  for (let i = 0; i < PUBACK_LEN - 2; i++) buf[off + i] = PUBACK[i]!
  buf[off + PUBACK_LEN - 2] = packetId >> 8
  buf[off + PUBACK_LEN - 1] = packetId & 0xff
}

/** A PUBLISH encoded once whose packet id and payload are patched in place before each send. */
export interface PublishTemplate {
  readonly bytes: Buffer
  /** Offset of the 2-byte packet id (QoS > 0), or -1. */
  readonly packetIdOffset: number
  readonly payloadOffset: number
}

export function publishTemplate(topic: string, payloadLength: number, qos: 0 | 1): PublishTemplate {
  const probe = 0xa55a
  const bytes = encode({
    cmd: 'publish',
    topic,
    payload: Buffer.alloc(payloadLength),
    qos,
    dup: false,
    retain: false,
    ...(qos > 0 ? { messageId: probe } : {}),
  })
  const payloadOffset = bytes.length - payloadLength
  const packetIdOffset = qos > 0 ? payloadOffset - 2 : -1
  if (qos > 0 && bytes.readUInt16BE(packetIdOffset) !== probe)
    throw new Error('PUBLISH template: the packet id is not where MQTT 3.1.1 puts it')
  return { bytes, packetIdOffset, payloadOffset }
}

export interface StreamHandlers {
  /**
   * A PUBLISH: its QoS, packet id (0 at QoS 0) and payload `buf[start, end)`, a view valid only
   * during the call (the topic is not decoded: the benchmark's payloads say whose they are).
   */
  publish?: (qos: number, packetId: number, buf: Buffer, start: number, end: number) => void
  puback?: (packetId: number) => void
  /** Any other packet, decoded by mqtt-packet. */
  control: (packet: Packet) => void
}

/**
 * The one mqtt-packet parser of the process, shared by every {@link MqttStream}: it is only ever
 * handed whole packets, so it holds no state between them, and thousands of connections (the
 * direct login ramp) do not each build a parser (an emitter, a BufferList, a packet) while the
 * ramp is timed. `deliver` is the handler of the stream whose packet is being parsed.
 */
const parser = mqttPacket.parser(OPTS)
let deliver: (packet: Packet) => void = () => {}
parser.on('packet', (packet: Packet) => deliver(packet))
parser.on('error', (err: Error) => {
  throw new Error(`MQTT: ${err.message}`)
})

/**
 * Splits an MQTT byte stream into packets (the gateway's own PacketReader: any split of the stream
 * gives the same packets, a packet wholly inside one chunk is read in place). The data path
 * (PUBLISH, PUBACK) is read here (see the top of this file for why); every other packet is handed
 * whole to mqtt-packet's parser.
 */
export class MqttStream {
  private readonly onPublish: StreamHandlers['publish']
  private readonly onPuback: StreamHandlers['puback']
  private readonly onControl: StreamHandlers['control']
  private readonly reader: PacketReader

  constructor(handlers: StreamHandlers) {
    this.onPublish = handlers.publish
    this.onPuback = handlers.puback
    this.onControl = handlers.control
    this.reader = new PacketReader(Number.MAX_SAFE_INTEGER, {
      onPacket: (_first, buf, start, body, end) => this.packet(buf, start, body, end),
      onOversize: () => {},
      onMalformed: (reason) => {
        throw new Error(`MQTT: ${reason}`)
      },
    })
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk)
  }

  /** One packet: `buf[start, end)`, its body from `body`. */
  private packet(buf: Buffer, start: number, body: number, end: number): void {
    const first = buf[start]!
    const type = first >> 4
    if (type === 3 && this.onPublish !== undefined) {
      const qos = (first >> 1) & 3
      let off = body + 2 + ((buf[body]! << 8) | buf[body + 1]!)
      let packetId = 0
      if (qos > 0) {
        packetId = (buf[off]! << 8) | buf[off + 1]!
        off += 2
      }
      this.onPublish(qos, packetId, buf, off, end)
    } else if (type === 4 && this.onPuback !== undefined) {
      this.onPuback((buf[body]! << 8) | buf[body + 1]!)
    } else {
      deliver = this.onControl
      parser.parse(buf.subarray(start, end))
    }
  }
}
