import { once } from 'node:events'
import { createServer, type Socket, connect as tcpConnect } from 'node:net'
import { expect } from 'chai'
import mqttPacket from 'mqtt-packet'
import { PubackTap, tapPubacks } from '../../src/adapters/puback-tap.js'
import { splitAt } from '../helpers/decode.js'
import { waitUntil } from '../helpers/inbox.js'

interface Parsed {
  cmd: string
  messageId?: number
  length: number
}

const OURS = [1, 2, 3, 4, 5, 6]

const puback = (messageId: number) => mqttPacket.generate({ cmd: 'puback', messageId })

/** What a broker sends the gateway: PUBACKs (ours and MQTT.js's own) among other packets. */
function packets(bigPayload: number): Buffer[] {
  return [
    puback(1),
    puback(2),
    mqttPacket.generate({ cmd: 'suback', messageId: 7, granted: [1] }),
    puback(3),
    puback(900), // MQTT.js's own
    // A payload that reads like one of our PUBACKs: a cut before it is no packet boundary.
    mqttPacket.generate({
      cmd: 'publish',
      topic: 'a/b',
      payload: Buffer.concat([puback(5), Buffer.alloc(200, 1)]),
      qos: 0,
      retain: false,
      dup: false,
    }),
    puback(4),
    { cmd: 'pingresp' as const },
    mqttPacket.generate({
      cmd: 'publish',
      topic: 'hypertcp/x/dn',
      payload: Buffer.alloc(bigPayload, 2),
      qos: 1,
      messageId: 8,
      retain: false,
      dup: false,
    }),
    puback(5),
    puback(6),
  ].map((p) => (Buffer.isBuffer(p) ? p : mqttPacket.generate(p)))
}

function parseAll(bytes: Buffer): Parsed[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const out: Parsed[] = []
  const errors: Error[] = []
  parser.on('packet', (packet) => {
    const p = packet as unknown as Parsed
    out.push({ cmd: p.cmd, messageId: p.messageId, length: p.length })
  })
  parser.on('error', (e) => errors.push(e))
  parser.parse(bytes)
  expect(errors, 'the bytes passed on parse').to.deep.equal([])
  return out
}

/** Feeds `chunks` through a tap; returns the ids it took and what it passed on, parsed. */
function run(chunks: readonly Buffer[]) {
  const taken: number[] = []
  const tap = new PubackTap((id) => {
    if (!OURS.includes(id) || taken.includes(id)) return false
    taken.push(id)
    return true
  })
  const passed: Buffer[] = []
  for (const c of chunks) {
    const rest = tap.take(c)
    if (rest !== undefined) passed.push(rest)
  }
  return { taken, passed: parseAll(Buffer.concat(passed)), passedChunks: passed }
}

/** The packets not taken must reach MQTT.js whole, in order; every PUBACK is handled once. */
function expectConsistent(all: Buffer, r: ReturnType<typeof run>): void {
  const expected = parseAll(all).filter((p) => !(p.cmd === 'puback' && r.taken.includes(p.messageId!)))
  expect(r.passed).to.deep.equal(expected)
  const pubacksSeen = [...r.taken, ...r.passed.filter((p) => p.cmd === 'puback').map((p) => p.messageId)]
  expect(pubacksSeen.sort((a, b) => a! - b!)).to.deep.equal([...OURS, 900])
}

/**
 * Which PUBACKs the tap is to take: ours, whole in a chunk that starts at a packet boundary,
 * preceded in it only by PUBACKs it took.
 */
function expectedTaken(list: readonly Buffer[], chunks: readonly Buffer[]): number[] {
  const starts = new Map<number, number>() // packet offset -> index
  let off = 0
  for (const [i, p] of list.entries()) {
    starts.set(off, i)
    off += p.length
  }
  const out: number[] = []
  let s = 0
  for (const c of chunks) {
    const e = s + c.length
    let at = s
    let i = starts.get(at)
    while (i !== undefined && at + 4 <= e) {
      const p = list[i]!
      const id = p[0] === 0x40 ? p.readUInt16BE(2) : -1
      if (!OURS.includes(id)) break
      out.push(id)
      at += 4
      i = starts.get(at)
    }
    s = e
  }
  return out
}

/** A small deterministic generator, so a failure names its case. */
function lcg(seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return s / 2 ** 31
  }
}

describe('PUBACK tap (the pipeline reads its PUBACKs before MQTT.js)', () => {
  it('takes our PUBACKs that arrive alone, one packet per chunk, and passes every other packet', () => {
    const list = packets(300)
    const r = run(list)
    expect(r.taken).to.deep.equal(OURS)
    expectConsistent(Buffer.concat(list), r)
    expect(r.passed.map((p) => p.cmd)).to.deep.equal(['suback', 'puback', 'publish', 'pingresp', 'publish'])
  })

  it('takes only the PUBACKs that start a chunk: the rest of it goes to MQTT.js in order', () => {
    const all = Buffer.concat(packets(300))
    const r = run([all])
    expect(r.taken).to.deep.equal([1, 2])
    expect(r.passedChunks).to.have.length(1)
    expect(r.passedChunks[0]!.equals(all.subarray(8)), 'the tail, uncopied').to.equal(true)
    expectConsistent(all, r)
  })

  it('stays in step with the packet boundaries wherever the chunks are cut', function () {
    this.timeout(30_000)
    const check = (list: Buffer[], chunks: Buffer[], what: string) => {
      const r = run(chunks)
      expectConsistent(Buffer.concat(list), r)
      expect(r.taken, what).to.deep.equal(expectedTaken(list, chunks))
    }
    const small = packets(300)
    const smallBytes = Buffer.concat(small)
    for (let cut = 1; cut < smallBytes.length; cut++) {
      check(small, splitAt(smallBytes, [cut]), `cut at ${cut}`)
      check(small, splitAt(smallBytes, [cut, cut + 4, cut + 9]), `cuts at ${cut}, +4, +9`)
    }
    check(
      small,
      [...smallBytes].map((b) => Buffer.from([b])),
      'byte by byte',
    )
    // A 3-byte remaining length (a 20,000-byte downlink), cut at random places.
    const big = packets(20_000)
    const bigBytes = Buffer.concat(big)
    const random = lcg(7)
    for (let i = 0; i < 300; i++) {
      const cuts = Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        random() < 0.5 ? Math.floor(random() * bigBytes.length) : Math.floor(random() * 40),
      )
      check(big, splitAt(bigBytes, cuts), `cuts ${cuts.join(',')}`)
    }
  })

  it('takes a PUBACK that follows a packet cut across chunks, once that packet is complete', () => {
    const [a, b] = [puback(900), puback(3)]
    const r = run([a.subarray(0, 3), Buffer.concat([a.subarray(3), b]), puback(4)])
    expect(r.taken).to.deep.equal([4]) // 3 shared a chunk with the end of 900
    expect(r.passed.map((p) => p.messageId)).to.deep.equal([900, 3])
  })

  it('passes everything on once the stream cannot be followed (a malformed remaining length)', () => {
    const taken: number[] = []
    const tap = new PubackTap((id) => taken.push(id) > 0)
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])
    expect(tap.take(bad)).to.equal(bad)
    const next = puback(1)
    expect(tap.take(next)).to.equal(next)
    expect(taken).to.deep.equal([])
  })
})

describe('tapPubacks on a TCP socket', () => {
  let server: ReturnType<typeof createServer>
  let peer: Socket
  let socket: Socket
  const taken: number[] = []
  const received: Buffer[] = []

  before(async () => {
    server = createServer((s) => {
      peer = s
    }).listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as { port: number }).port
    socket = tcpConnect(port, '127.0.0.1')
    tapPubacks(socket, (id) => id < 100 && taken.push(id) > 0)
    socket.on('data', (c: Buffer) => received.push(c))
    await once(socket, 'connect')
    await waitUntil(() => peer !== undefined, 'the server side')
  })

  after(() => {
    socket.destroy()
    server.close()
  })

  it('completes PUBACKs before the reader sees them, and hands it everything else', async () => {
    peer.write(Buffer.concat([puback(1), puback(2)]))
    await waitUntil(() => taken.length === 2, 'two PUBACKs taken')
    expect(taken).to.deep.equal([1, 2])
    peer.write(mqttPacket.generate({ cmd: 'pingresp' }))
    await waitUntil(() => received.length > 0, 'the PINGRESP')
    peer.write(puback(900))
    await waitUntil(() => Buffer.concat(received).length === 6, 'the PUBACK of another publisher')
    expect(Buffer.concat(received).toString('hex')).to.equal('d000' + '40020384')
    expect(taken).to.deep.equal([1, 2])
  })
})
