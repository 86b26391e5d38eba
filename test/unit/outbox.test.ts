import { expect } from 'chai'
import mqttPacket from 'mqtt-packet'
import { Outbox, type OutboxLimits, PacketIds } from '../../src/adapters/broker-link/outbox.js'
import { PacketWriter } from '../../src/adapters/broker-link/writer.js'
import { PublishRefusedError } from '../../src/errors.js'

interface Parsed {
  cmd: string
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  dup: boolean
  messageId: number
}

const LIMITS: OutboxLimits = {
  level: 5,
  receiveMaximum: 65535,
  maximumPacketSize: Number.MAX_SAFE_INTEGER,
  maximumQos: 2,
  retainAvailable: true,
  sessionPresent: false,
}

/** The outbox and its writer against a sink that records each write; a turn ends when the test says. */
function harness(level: 4 | 5 = 5) {
  const ids = new PacketIds()
  const writes: Buffer[] = []
  let scheduled: (() => void)[] = []
  const sink = { write: (chunk: Buffer) => writes.push(Buffer.from(chunk)) > 0 }
  let outbox: Outbox
  const writer = new PacketWriter(
    (fn) => scheduled.push(fn),
    () => outbox.flushed(),
  )
  outbox = new Outbox(writer, ids, (id) =>
    mqttPacket.generate({ cmd: 'pubrel', messageId: id }, { protocolVersion: level }),
  )
  const endTurn = () => {
    const fns = scheduled
    scheduled = []
    for (const fn of fns) fn()
  }
  /** Connection up: attach the sink, then the outbox (as the link does at CONNACK). */
  const connect = (limits: Partial<OutboxLimits> = {}) => {
    writer.attach(sink)
    outbox.connected({ ...LIMITS, level, ...limits })
  }
  const disconnect = () => {
    writer.detach()
    outbox.disconnected()
  }
  /** Every packet written so far, parsed by mqtt-packet (what brokers' clients use). */
  const parsed = (): Parsed[] => {
    const parser = mqttPacket.parser({ protocolVersion: level })
    const out: Parsed[] = []
    parser.on('packet', (p) => out.push(p as unknown as Parsed))
    parser.on('error', (err) => {
      throw err
    })
    for (const w of writes) parser.parse(w)
    return out
  }
  return { ids, outbox, writer, writes, endTurn, parsed, connect, disconnect }
}

describe('broker link: Outbox (every publish, in order, across reconnections)', () => {
  for (const level of [4, 5] as const) {
    it(`writes a turn's publishes in one write, as packets mqtt-packet parses back (MQTT ${level === 5 ? 5 : '3.1.1'})`, () => {
      const { outbox, writes, endTurn, parsed, connect } = harness(level)
      connect()
      const answered: string[] = []
      outbox.publish('hypertcp/a/up', '{"t":1}', 1, false, () => answered.push('a'))
      outbox.publish('hypertcp/b/up', Buffer.from([0, 1, 2, 255]), 1, true, () => answered.push('b'))
      outbox.publish('hypertcp/ü/up', '{"s":"€"}', 0, false, () => answered.push('c'))
      outbox.publish('hypertcp/d/up', 'x', 2, false, () => answered.push('d'))
      expect(writes).to.have.length(0) // nothing before the turn ends
      endTurn()
      expect(writes).to.have.length(1)
      const packets = parsed()
      expect(packets.map((p) => [p.cmd, p.qos, p.retain, p.dup, p.topic])).to.deep.equal([
        ['publish', 1, false, false, 'hypertcp/a/up'],
        ['publish', 1, true, false, 'hypertcp/b/up'],
        ['publish', 0, false, false, 'hypertcp/ü/up'],
        ['publish', 2, false, false, 'hypertcp/d/up'],
      ])
      expect(packets.map((p) => p.payload)).to.deep.equal([
        Buffer.from('{"t":1}'),
        Buffer.from([0, 1, 2, 255]),
        Buffer.from('{"s":"€"}'),
        Buffer.from('x'),
      ])
      expect(answered).to.deep.equal(['c']) // QoS 0: once written; the others await the broker
    })
  }

  it('encodes the remaining length at each of its size steps, and packets larger than a slab', () => {
    const { outbox, endTurn, parsed, connect } = harness(5)
    connect()
    // remaining length = 2 + topic (1) + 2 + properties (1) + payload
    const sizes = [127, 128, 16_383, 16_384, 70_000, 2_097_152].map((r) => r - 6)
    for (const [i, n] of sizes.entries()) outbox.publish('t', Buffer.alloc(n, i + 1), 1, false, () => {})
    outbox.publish('t', 'after', 1, false, () => {})
    endTurn()
    const packets = parsed()
    expect(packets.map((p) => p.payload.length)).to.deep.equal([...sizes, 5])
    for (const [i, p] of packets.slice(0, -1).entries())
      expect(p.payload.every((b) => b === i + 1)).to.equal(true)
  })

  it('completes each publish at its PUBACK, with a PublishRefusedError for a failure reason, and frees its id', () => {
    const { ids, outbox, endTurn, parsed, connect } = harness(5)
    connect()
    const answered: string[] = []
    for (let i = 0; i < 3; i++)
      outbox.publish(`t/${i}`, String(i), 1, false, (err) =>
        answered.push(err ? `${i} ${(err as PublishRefusedError).reasonCode}` : `${i} ok`),
      )
    endTurn()
    const [a, b, c] = parsed().map((p) => p.messageId)
    expect(outbox.puback(a!, 0)).to.equal(true)
    expect(outbox.puback(b!, 0x87, 'ACL')).to.equal(true)
    expect(outbox.puback(b!, 0)).to.equal(false) // a second PUBACK for it: the link reports it
    expect(outbox.puback(c!, 0x10)).to.equal(true) // "no matching subscribers" is a success
    expect(answered).to.deep.equal(['0 ok', '1 135', '2 ok'])
    expect(outbox.inflight).to.equal(0)
    expect(ids.inUse).to.equal(0)
  })

  it('waits while disconnected, and writes what waited first, in order, at the next connection', () => {
    const { outbox, writes, endTurn, parsed, connect } = harness(5)
    for (let i = 0; i < 3; i++) outbox.publish(`t/${i}`, String(i), i === 1 ? 0 : 1, false, () => {})
    endTurn()
    expect(writes).to.have.length(0)
    connect()
    outbox.publish('t/3', '3', 1, false, () => {})
    endTurn()
    expect(parsed().map((p) => p.topic)).to.deep.equal(['t/0', 't/1', 't/2', 't/3'])
  })

  it('after a lost connection, resends what was unacknowledged with DUP, in its order, before anything newer', () => {
    const { outbox, writes, endTurn, parsed, connect, disconnect } = harness(5)
    connect()
    const answered: number[] = []
    for (let i = 0; i < 6; i++) outbox.publish(`t/${i}`, String(i), 1, i % 3 === 0, () => answered.push(i))
    endTurn()
    const first = parsed()
    outbox.puback(first[1]!.messageId, 0) // t/1 is acknowledged (out of order)
    outbox.publish('t/q0', 'zero', 0, false, () => answered.push(100)) // encoded, never written
    disconnect()
    outbox.publish('t/6', '6', 1, false, () => answered.push(6)) // while away
    writes.length = 0
    connect()
    outbox.publish('t/7', '7', 1, false, () => answered.push(7))
    endTurn()
    const again = parsed()
    expect(again.map((p) => [p.topic, p.dup])).to.deep.equal([
      ['t/0', true],
      ['t/2', true],
      ['t/3', true],
      ['t/4', true],
      ['t/5', true],
      ['t/q0', false],
      ['t/6', false],
      ['t/7', false],
    ])
    expect(again[2]!.retain).to.equal(true)
    // The same identifiers as before (a broker that kept the session knows them).
    expect(again.slice(0, 5).map((p) => p.messageId)).to.deep.equal(
      [0, 2, 3, 4, 5].map((i) => first[i]!.messageId),
    )
    expect(answered).to.deep.equal([1, 100])
  })

  it("holds QoS 1 and 2 publishes beyond the broker's Receive Maximum, and sends the next at each acknowledgement", () => {
    const { outbox, endTurn, parsed, connect } = harness(5)
    connect({ receiveMaximum: 2 })
    for (let i = 0; i < 5; i++) outbox.publish(`t/${i}`, String(i), 1, false, () => {})
    outbox.publish('t/zero', 'z', 0, false, () => {}) // behind them: order first
    endTurn()
    expect(parsed().map((p) => p.topic)).to.deep.equal(['t/0', 't/1'])
    outbox.puback(parsed()[0]!.messageId, 0)
    endTurn()
    expect(parsed().map((p) => p.topic)).to.deep.equal(['t/0', 't/1', 't/2'])
    expect(outbox.inflight).to.equal(2)
    for (let k = 1; k < 5; k++) {
      outbox.puback(parsed()[k]!.messageId, 0)
      endTurn()
    }
    expect(parsed().map((p) => p.topic)).to.deep.equal(['t/0', 't/1', 't/2', 't/3', 't/4', 't/zero'])
  })

  it('runs QoS 2 through PUBREC, PUBREL and PUBCOMP; a PUBACK completes it too (RabbitMQ 3.10)', () => {
    const { outbox, endTurn, parsed, connect } = harness(5)
    connect()
    const answered: string[] = []
    outbox.publish('t/a', 'a', 2, false, () => answered.push('a'))
    outbox.publish('t/b', 'b', 2, false, () => answered.push('b'))
    endTurn()
    const [a, b] = parsed()
    expect(outbox.pubcomp(a!.messageId, 0)).to.equal(false) // not released yet
    expect(outbox.pubrec(a!.messageId, 0)).to.equal(true)
    endTurn()
    expect(parsed()[2]).to.deep.include({ cmd: 'pubrel', messageId: a!.messageId })
    expect(answered).to.deep.equal([])
    expect(outbox.pubcomp(a!.messageId, 0)).to.equal(true)
    expect(outbox.puback(b!.messageId, 0)).to.equal(true)
    expect(answered).to.deep.equal(['a', 'b'])
  })

  it('after a reconnection, releases a QoS 2 publish again if the session was kept, else publishes it again', () => {
    for (const sessionPresent of [true, false]) {
      const { outbox, writes, endTurn, parsed, connect, disconnect } = harness(5)
      connect()
      outbox.publish('t/a', 'a', 2, false, () => {})
      endTurn()
      const id = parsed()[0]!.messageId
      outbox.pubrec(id, 0)
      endTurn()
      disconnect()
      writes.length = 0
      connect({ sessionPresent })
      endTurn()
      const p = parsed()[0]!
      if (sessionPresent) expect(p).to.deep.include({ cmd: 'pubrel', messageId: id })
      else expect(p).to.deep.include({ cmd: 'publish', topic: 't/a', dup: true, qos: 2 })
    }
  })

  it("follows the broker's limits: Maximum QoS, no retain, Maximum Packet Size (refused, not sent)", () => {
    const { outbox, endTurn, parsed, connect } = harness(5)
    connect({ maximumQos: 1, retainAvailable: false, maximumPacketSize: 100 })
    let refused: Error | undefined
    outbox.publish('t/a', 'a', 2, true, () => {})
    outbox.publish('t/big', Buffer.alloc(200), 1, false, (err) => (refused = err))
    endTurn()
    expect(parsed().map((p) => [p.topic, p.qos, p.retain])).to.deep.equal([['t/a', 1, false]])
    expect(refused).to.be.instanceOf(PublishRefusedError)
    expect((refused as PublishRefusedError).reasonCode).to.equal(0x95)
  })

  it('answers everything left with the error of failAll, oldest first, and then waits for nothing', () => {
    const { outbox, endTurn, connect } = harness(5)
    connect()
    const answered: string[] = []
    outbox.publish('t/a', 'a', 1, false, (err) => answered.push(`a ${err?.message}`))
    endTurn()
    outbox.publish('t/b', 'b', 0, false, (err) => answered.push(`b ${err?.message}`))
    let empty = false
    outbox.onceEmpty(() => (empty = true))
    outbox.failAll(new Error('closed'))
    expect(answered).to.deep.equal(['a closed', 'b closed'])
    expect(empty).to.equal(true)
    expect(outbox.size).to.equal(0)
  })
})
