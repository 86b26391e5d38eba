import { expect } from 'chai'
import mqttPacket from 'mqtt-packet'
import { MessageIds, PublishPipeline } from '../../src/adapters/publish-pipeline.js'

interface Parsed {
  cmd: string
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  dup: boolean
  messageId: number
}

/** The pipeline against a sink that records each write, and a turn that ends when the test says. */
function harness() {
  const ids = new MessageIds()
  const writes: Buffer[] = []
  let scheduled: (() => void)[] = []
  const sink = { write: (chunk: Buffer) => writes.push(Buffer.from(chunk)) > 0 }
  const connection = { open: true }
  const pipeline = new PublishPipeline(
    ids,
    () => (connection.open ? sink : undefined),
    (fn) => scheduled.push(fn),
  )
  const endTurn = () => {
    const fns = scheduled
    scheduled = []
    for (const fn of fns) fn()
  }
  /** Every packet written so far, parsed by mqtt-packet (what MQTT.js and Aedes use). */
  const parsed = (): Parsed[] => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const out: Parsed[] = []
    parser.on('packet', (p) => out.push(p as unknown as Parsed))
    parser.on('error', (err) => {
      throw err
    })
    for (const w of writes) parser.parse(w)
    return out
  }
  return { ids, pipeline, writes, endTurn, parsed, connection }
}

describe('PublishPipeline (QoS 0 and 1 publishes written by the gateway)', () => {
  it('writes every publish of a turn in one write, as PUBLISH packets mqtt-packet parses back', () => {
    const { pipeline, writes, endTurn, parsed } = harness()
    const answered: string[] = []
    pipeline.publish('hypertcp/a/up', '{"t":1}', 1, false, () => answered.push('a'))
    pipeline.publish('hypertcp/b/up', Buffer.from([0, 1, 2, 255]), 1, true, () => answered.push('b'))
    pipeline.publish('hypertcp/ü/up', '{"s":"€"}', 1, false, () => answered.push('c'))
    expect(writes).to.have.length(0) // nothing before the turn ends
    endTurn()
    expect(writes).to.have.length(1)
    const packets = parsed()
    expect(packets.map((p) => [p.cmd, p.qos, p.retain, p.dup, p.topic])).to.deep.equal([
      ['publish', 1, false, false, 'hypertcp/a/up'],
      ['publish', 1, true, false, 'hypertcp/b/up'],
      ['publish', 1, false, false, 'hypertcp/ü/up'],
    ])
    expect(packets[0]!.payload.toString()).to.equal('{"t":1}')
    expect([...packets[1]!.payload]).to.deep.equal([0, 1, 2, 255])
    expect(packets[2]!.payload.toString()).to.equal('{"s":"€"}')
    expect(new Set(packets.map((p) => p.messageId)).size).to.equal(3)
    expect(answered).to.deep.equal([]) // written is not acknowledged
  })

  it('encodes the remaining length at each of its size steps, and packets larger than a slab', () => {
    const { pipeline, endTurn, parsed } = harness()
    const topic = 't'
    // remaining length = 2 + topic + 2 + payload
    const sizes = [127, 128, 16_383, 16_384, 70_000, 2_097_152].map((r) => r - 5)
    for (const [i, n] of sizes.entries()) pipeline.publish(topic, Buffer.alloc(n, i + 1), 1, false, () => {})
    pipeline.publish(topic, 'after', 1, false, () => {})
    endTurn()
    const packets = parsed()
    expect(packets.map((p) => p.payload.length)).to.deep.equal([...sizes, 5])
    for (const [i, p] of packets.slice(0, -1).entries())
      expect(p.payload.every((b) => b === i + 1)).to.equal(true)
    expect(packets.at(-1)!.payload.toString()).to.equal('after')
  })

  it('answers each PUBACK with its publish, frees the identifier, and ignores identifiers not its own', () => {
    const { ids, pipeline, endTurn, parsed } = harness()
    const answered: number[] = []
    for (let i = 0; i < 3; i++) pipeline.publish('t', String(i), 1, false, () => answered.push(i))
    endTurn()
    const [a, b, c] = parsed().map((p) => p.messageId)
    const foreign = ids.allocate()! // MQTT.js's own publish or subscription
    expect(pipeline.acknowledge(foreign)).to.equal(undefined)
    pipeline.acknowledge(a!)!()
    pipeline.acknowledge(b!)!()
    expect(pipeline.acknowledge(b!)).to.equal(undefined) // a second PUBACK for it
    pipeline.acknowledge(c!)!()
    expect(answered).to.deep.equal([0, 1, 2])
    expect(pipeline.inflight).to.equal(0)
    expect(ids.inUse).to.equal(1) // only the foreign one
  })

  it('takes a PUBACK out of order without disturbing the order of the rest', () => {
    const { pipeline, endTurn, parsed } = harness()
    for (let i = 0; i < 5; i++) pipeline.publish(`t/${i}`, String(i), 1, false, () => {})
    endTurn()
    const id = parsed()[2]!.messageId
    expect(pipeline.acknowledge(id)).to.be.a('function')
    expect(pipeline.takeUnacknowledged().map((u) => u.topic)).to.deep.equal(['t/0', 't/1', 't/3', 't/4'])
  })

  it('hands back what awaits a PUBACK, oldest first, past its initial capacity, and drops unwritten bytes', () => {
    const { ids, pipeline, writes, endTurn } = harness()
    const dones = new Map<number, () => void>()
    for (let i = 0; i < 200; i++) {
      const done = () => {}
      dones.set(i, done)
      pipeline.publish(`t/${i}`, i % 2 === 0 ? `p${i}` : Buffer.from(`p${i}`), 1, i % 3 === 0, done)
    }
    const back = pipeline.takeUnacknowledged()
    expect(back).to.have.length(200)
    for (const [i, u] of back.entries()) {
      expect(u.topic).to.equal(`t/${i}`)
      expect(u.payload.toString()).to.equal(`p${i}`)
      expect(u.retain).to.equal(i % 3 === 0)
      expect(u.done).to.equal(dones.get(i))
    }
    endTurn()
    expect(writes).to.have.length(0) // the connection they were for is gone
    expect(pipeline.inflight).to.equal(0)
    expect(ids.inUse).to.equal(0)
  })

  it("writes QoS 0 publishes in the same turn's write, in order, and answers each once written", () => {
    const { ids, pipeline, writes, endTurn, parsed } = harness()
    const answered: string[] = []
    pipeline.publish('t/a', 'zero', 0, false, (err) => answered.push(`a ${err ?? 'ok'}`))
    pipeline.publish('t/b', 'one', 1, false, () => answered.push('b'))
    pipeline.publish('t/c', Buffer.from('zero again'), 0, true, (err) => answered.push(`c ${err ?? 'ok'}`))
    expect(answered).to.deep.equal([]) // encoded is not written
    endTurn()
    expect(writes).to.have.length(1)
    expect(answered).to.deep.equal(['a ok', 'c ok']) // the QoS 1 one waits for its PUBACK
    const packets = parsed()
    expect(packets.map((p) => [p.topic, p.qos, p.retain, p.payload.toString()])).to.deep.equal([
      ['t/a', 0, false, 'zero'],
      ['t/b', 1, false, 'one'],
      ['t/c', 0, true, 'zero again'],
    ])
    expect(packets[0]!.messageId).to.equal(undefined)
    expect(ids.inUse).to.equal(1) // QoS 0 takes no packet identifier
    expect(pipeline.inflight).to.equal(1)
  })

  it('hands back QoS 0 publishes not yet written with the unacknowledged QoS 1 ones, in publish order', () => {
    const { pipeline, writes, endTurn, connection } = harness()
    const answered: string[] = []
    const publish = (topic: string, qos: 0 | 1) =>
      pipeline.publish(topic, topic, qos, false, () => answered.push(topic))
    publish('written/0', 0)
    publish('written/1', 1)
    endTurn() // written/0 answered; written/1 awaits its PUBACK
    connection.open = false // the socket is gone; 'close' has not been seen yet
    publish('a/0', 0)
    publish('b/1', 1)
    publish('c/0', 0)
    publish('d/0', 0)
    publish('e/1', 1)
    endTurn() // nothing to write to: nothing written, nothing answered
    expect(writes).to.have.length(1)
    expect(answered).to.deep.equal(['written/0'])
    const back = pipeline.takeUnacknowledged()
    expect(back.map((u) => [u.topic, u.qos])).to.deep.equal([
      ['written/1', 1],
      ['a/0', 0],
      ['b/1', 1],
      ['c/0', 0],
      ['d/0', 0],
      ['e/1', 1],
    ])
    connection.open = true
    endTurn()
    pipeline.flush()
    expect(writes).to.have.length(1) // their bytes went with the connection
    expect(answered).to.deep.equal(['written/0']) // answering them is now whoever publishes them again
  })

  it('declines a publish when no packet identifier is free (the caller publishes another way)', () => {
    const { ids, pipeline } = harness()
    for (let i = 0; i < 65535; i++) ids.allocate()
    let called = false
    expect(pipeline.publish('t', 'x', 1, false, () => (called = true))).to.equal(false)
    expect(called).to.equal(false)
    expect(pipeline.inflight).to.equal(0)
    expect(pipeline.publish('t', 'x', 0, false, () => (called = true))).to.equal(true) // needs none
  })
})

describe('MessageIds (packet identifiers shared with MQTT.js)', () => {
  it('never hands out an identifier in use, wraps past 65535, and is exhausted at 65535 in use', () => {
    const ids = new MessageIds()
    const first = ids.allocate()!
    expect(ids.register(first)).to.equal(false)
    expect(ids.register(2)).to.equal(true) // MQTT.js re-sending a stored packet
    const seen = new Set([first, 2])
    for (let i = 0; i < 65533; i++) {
      const id = ids.allocate()!
      expect(id).to.be.within(1, 65535)
      expect(seen.has(id), `identifier ${id} handed out twice`).to.equal(false)
      seen.add(id)
    }
    expect(ids.allocate()).to.equal(null)
    ids.deallocate(40_000)
    expect(ids.allocate()).to.equal(40_000)
    expect(ids.getLastAllocated()).to.equal(40_000)
    ids.clear()
    expect(ids.inUse).to.equal(0)
  })
})
