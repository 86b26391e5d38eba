import { expect } from 'chai'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { OVERSIZE_HEAD, PacketReader } from '../../src/adapters/broker-link/packet-reader.js'

/** A stream of packets of every kind and size class a broker sends (remaining lengths of 1–3 bytes). */
function brokerStream(): Buffer[] {
  const out: Buffer[] = [mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false })]
  for (let i = 0; i < 60; i++) {
    out.push(mqttPacket.generate({ cmd: 'puback', messageId: i + 1 }))
    out.push(
      mqttPacket.generate({
        cmd: 'publish',
        topic: `hypertcp/d${i}/dn`,
        payload: Buffer.alloc([0, 1, 100, 127, 128, 300, 16_400][i % 7]!, i),
        qos: (i % 3) as 0 | 1 | 2,
        messageId: i + 1,
        retain: i % 5 === 0,
        dup: false,
      }),
    )
    out.push(mqttPacket.generate({ cmd: 'pingresp' }))
  }
  return out
}

interface Seen {
  packets: Buffer[]
  starts: number[]
  oversize: { first: number; length: number; head: Buffer }[]
  malformed: string[]
}

function reader(max = 1 << 20): { r: PacketReader; seen: Seen } {
  const seen: Seen = { packets: [], starts: [], oversize: [], malformed: [] }
  const r = new PacketReader(max, {
    onPacket: (_first, buf, start, bodyStart, end) => {
      seen.packets.push(Buffer.from(buf.subarray(start, end)))
      seen.starts.push(bodyStart - start)
    },
    onOversize: (first, length, head) => seen.oversize.push({ first, length, head: Buffer.from(head) }),
    onMalformed: (reason) => seen.malformed.push(reason),
  })
  return { r, seen }
}

function pushInPieces(r: PacketReader, bytes: Buffer, cuts: readonly number[]): void {
  let at = 0
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    r.push(bytes.subarray(at, cut))
    at = cut
  }
  r.push(bytes.subarray(at))
}

describe('broker link: PacketReader (MQTT framing)', () => {
  const packets = brokerStream()
  const stream = Buffer.concat(packets)

  it('hands out every packet whole, with the offset of its variable header, in one chunk', () => {
    const { r, seen } = reader()
    r.push(stream)
    expect(seen.packets).to.deep.equal(packets)
    for (const [i, p] of packets.entries()) {
      const length = p.length - seen.starts[i]!
      expect(p[seen.starts[i]! - 1]! & 0x80, 'last length byte').to.equal(0)
      expect(length).to.be.at.least(0)
    }
  })

  it('gives the same packets byte by byte and for any cutting of the stream', () => {
    const { r, seen } = reader()
    for (let i = 0; i < stream.length; i++) r.push(stream.subarray(i, i + 1))
    expect(seen.packets).to.deep.equal(packets)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), (cuts) => {
        const { r, seen } = reader()
        pushInPieces(r, stream, cuts)
        expect(seen.packets).to.deep.equal(packets)
        expect(seen.malformed).to.deep.equal([])
      }),
      { numRuns: 300 },
    )
  })

  it('skips a packet over the limit unread but for its head, and reads on after it, however cut', () => {
    const big = mqttPacket.generate({
      cmd: 'publish',
      topic: 'hypertcp/d1/dn',
      payload: Buffer.alloc(5000, 7),
      qos: 1,
      messageId: 42,
      retain: false,
      dup: false,
    })
    const after = mqttPacket.generate({ cmd: 'puback', messageId: 9 })
    const bytes = Buffer.concat([big, after])
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 8 }), (cuts) => {
        const { r, seen } = reader(2000)
        pushInPieces(r, bytes, cuts)
        expect(seen.packets).to.deep.equal([after])
        expect(seen.oversize).to.have.length(1)
        const { first, length, head } = seen.oversize[0]!
        expect(first).to.equal(big[0])
        expect(length).to.equal(big.length - 3) // a 2-byte remaining length
        expect(head.length).to.equal(OVERSIZE_HEAD)
        expect(head.equals(big.subarray(3, 3 + OVERSIZE_HEAD))).to.equal(true)
      }),
      { numRuns: 100 },
    )
  })

  it('counts the fixed header in the limit (MQTT 5 Maximum Packet Size is the whole packet)', () => {
    const p = mqttPacket.generate({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.alloc(10),
      qos: 0,
      retain: false,
      dup: false,
    })
    const fits = reader(p.length)
    fits.r.push(p)
    expect(fits.seen.packets).to.have.length(1)
    const over = reader(p.length - 1)
    over.r.push(p)
    expect(over.seen.packets).to.have.length(0)
    expect(over.seen.oversize).to.have.length(1)
  })

  it('reports a fifth remaining-length byte once, and reads nothing after it', () => {
    for (const split of [false, true]) {
      const { r, seen } = reader()
      const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])
      if (split) for (const b of bad) r.push(Buffer.from([b]))
      else r.push(bad)
      r.push(stream)
      expect(seen.malformed, split ? 'byte by byte' : 'in one chunk').to.have.length(1)
      expect(seen.packets).to.deep.equal([])
    }
  })
})
