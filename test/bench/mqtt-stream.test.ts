import { expect } from 'chai'
import fc from 'fast-check'
import mqttPacket, { type Packet } from 'mqtt-packet'
import {
  connectPacket,
  encode,
  MqttStream,
  PUBACK_LEN,
  publishTemplate,
  redactUrl,
  writePuback,
} from '../../bench/lib/mqtt-stream.js'

/** What the benchmark's stream reader reports, in a form comparable with mqtt-packet's view. */
type Seen =
  | { cmd: 'publish'; qos: number; messageId: number; payload: string }
  | { cmd: 'puback'; messageId: number }
  | { cmd: string }

function readAll(chunks: Buffer[]): Seen[] {
  const seen: Seen[] = []
  const stream = new MqttStream({
    publish: (qos, messageId, buf, start, end) =>
      seen.push({ cmd: 'publish', qos, messageId, payload: buf.toString('latin1', start, end) }),
    puback: (messageId) => seen.push({ cmd: 'puback', messageId }),
    control: (packet) => seen.push({ cmd: packet.cmd }),
  })
  for (const c of chunks) stream.push(c)
  return seen
}

function expected(packet: Packet): Seen {
  if (packet.cmd === 'publish')
    return {
      cmd: 'publish',
      qos: packet.qos,
      messageId: packet.qos > 0 ? packet.messageId! : 0,
      payload: Buffer.from(packet.payload).toString('latin1'),
    }
  if (packet.cmd === 'puback') return { cmd: 'puback', messageId: packet.messageId! }
  return { cmd: packet.cmd }
}

const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc
    .record({
      qos: fc.constantFrom(0 as const, 1 as const),
      messageId: fc.integer({ min: 1, max: 0xffff }),
      // Up to 3-byte remaining lengths.
      size: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 16_000, max: 17_000 })),
      topic: fc.constantFrom('hypertcp/d1/up', 'hypertcp/d123456/dn'),
    })
    .map(
      ({ qos, messageId, size, topic }): Packet => ({
        cmd: 'publish',
        qos,
        ...(qos > 0 ? { messageId } : {}),
        topic,
        payload: Buffer.alloc(size, 0x61 + (size % 26)),
        dup: false,
        retain: false,
      }),
    ),
  fc.integer({ min: 1, max: 0xffff }).map((messageId): Packet => ({ cmd: 'puback', messageId })),
  fc.constant<Packet>({ cmd: 'connack', returnCode: 0, sessionPresent: false }),
  fc.constant<Packet>({ cmd: 'suback', messageId: 1, granted: [1] }),
  fc.constant<Packet>({ cmd: 'pingresp' }),
)

describe('bench MqttStream (the benchmark clients’ reader)', () => {
  it('reads the packets mqtt-packet wrote, however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(packetArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }),
        (packets, cuts) => {
          const bytes = Buffer.concat(packets.map(encode))
          const chunks: Buffer[] = []
          let off = 0
          for (let i = 0; off < bytes.length; i++) {
            const n = cuts[i % cuts.length]! * (i % 7 === 0 ? 400 : 1)
            chunks.push(bytes.subarray(off, off + n))
            off += n
          }
          expect(readAll(chunks)).to.deep.equal(packets.map(expected))
        },
      ),
      { numRuns: 200 },
    )
  })

  it('patches a PUBLISH template and PUBACKs into what mqtt-packet parses', () => {
    const tpl = publishTemplate('hypertcp/d7/dn', 5, 1)
    const buf = Buffer.from(tpl.bytes)
    buf.writeUInt16BE(4242, tpl.packetIdOffset)
    buf.write('hello', tpl.payloadOffset, 'latin1')
    const acks = Buffer.alloc(PUBACK_LEN * 2)
    writePuback(acks, 0, 1)
    writePuback(acks, PUBACK_LEN, 0xfffe)
    const parsed: Packet[] = []
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => parsed.push(p))
    parser.parse(Buffer.concat([buf, acks, connectPacket('c', { host: 'h', port: 1, username: 'u' })]))
    expect(parsed.map((p) => p.cmd)).to.deep.equal(['publish', 'puback', 'puback', 'connect'])
    const pub = parsed[0] as Extract<Packet, { cmd: 'publish' }>
    expect([pub.topic, pub.qos, pub.messageId, String(pub.payload)]).to.deep.equal([
      'hypertcp/d7/dn',
      1,
      4242,
      'hello',
    ])
    expect(parsed.slice(1, 3).map((p) => p.messageId)).to.deep.equal([1, 0xfffe])
    expect((parsed[3] as Extract<Packet, { cmd: 'connect' }>).username).to.equal('u')
  })

  it('redacts credentials of a broker URL', () => {
    expect(redactUrl('mqtt://user:secret@broker.example:1884')).to.equal('mqtt://***:***@broker.example:1884')
    expect(redactUrl('mqtt://broker.example:1884')).to.equal('mqtt://broker.example:1884')
  })
})
