import { expect } from 'chai'
import mqttPacket from 'mqtt-packet'
import { PacketSizeScanner } from '../../src/adapters/packet-size-guard.js'

const publish = (bytes: number) =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: 't',
    payload: Buffer.alloc(bytes),
    qos: 0,
    retain: false,
    dup: false,
  })

/** Feeds `stream` to a scanner in chunks of `size` bytes; the first non-zero verdict. */
function scan(max: number, stream: Buffer, size: number): number {
  const scanner = new PacketSizeScanner(max)
  for (let i = 0; i < stream.length; i += size) {
    const verdict = scanner.push(stream.subarray(i, i + size))
    if (verdict !== 0) return verdict
  }
  return 0
}

describe('packet size guard: fixed headers only', () => {
  // Bodies of 1–4 length bytes, packets back to back, then one over the limit.
  const fine = Buffer.concat([publish(0), publish(200), publish(20_000), publish(1000)])
  const over = publish(70_000)
  const overBody = over.length - 4 // four bytes: type and a three-byte length

  for (const size of [1, 2, 3, 7, 100, 65_536]) {
    it(`passes packets within the limit and tells the first one over it, in chunks of ${size}`, () => {
      expect(scan(65_536, fine, size)).to.equal(0)
      expect(scan(65_536, Buffer.concat([fine, over, publish(10)]), size)).to.equal(overBody)
    })
  }

  it('tells a 200 MB announcement from its five header bytes, before any body', () => {
    // PUBLISH, remaining length 200 MiB: 0x80 0x80 0x80 0x64.
    const header = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x64])
    expect(scan(262_144, header, 1)).to.equal(200 * 1024 * 1024)
  })

  it('refuses a fifth remaining-length byte (malformed) and then says nothing more', () => {
    const scanner = new PacketSizeScanner(1 << 28)
    expect(scanner.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).to.equal(-1)
    expect(scanner.push(publish(10))).to.equal(0)
  })
})
