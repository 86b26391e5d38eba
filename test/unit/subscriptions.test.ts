import { expect } from 'chai'
import { laneIndex } from '../../src/bridge/lanes.js'
import { Pacer } from '../../src/bridge/pacer.js'
import type { MqttPort, SubscribeDone } from '../../src/bridge/port.js'
import { Subscriptions } from '../../src/bridge/subscriptions.js'
import { Inbox } from '../helpers/inbox.js'

/** A broker connection that records each SUBSCRIBE / UNSUBSCRIBE and settles them when told. */
class RecordingPort implements MqttPort {
  readonly connected = true
  readonly sent: { op: 'sub' | 'unsub'; topics: string[]; done: SubscribeDone }[] = []
  publish(): void {}
  subscribe(topics: readonly string[], _qos: 0 | 1 | 2, done: SubscribeDone): void {
    this.sent.push({ op: 'sub', topics: [...topics], done })
  }
  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void {
    this.sent.push({ op: 'unsub', topics: [...topics], done })
  }
  onMessage(): void {}
  onConnect(): void {}
  /** What was sent, as `sub a b` / `unsub c` lines. */
  get log(): string[] {
    return this.sent.map((s) => `${s.op} ${s.topics.join(' ')}`)
  }
}

/**
 * Resolves to 'resolved' (or 'resolved, refused: a b' when the broker refused topics) /
 * 'rejected: msg' / 'pending' after the current microtasks.
 */
async function outcome(p: Promise<readonly string[]>): Promise<string> {
  const pending = Symbol('pending')
  const r = await Promise.race([
    p.then(
      (refused) => (refused.length === 0 ? 'resolved' : `resolved, refused: ${refused.join(' ')}`),
      (err: Error) => `rejected: ${err.message}`,
    ),
    new Promise<symbol>((resolve) => setImmediate(() => resolve(pending))),
  ])
  return r === pending ? 'pending' : (r as string)
}

describe('subscriptions', () => {
  it('sends the topics of many adds in one SUBSCRIBE at flush, and resolves each add at its SUBACK', async () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    const a = subs.add(['a/dn', 'a/ctl'])
    const b = subs.add(['b/dn', 'b/ctl'])
    expect(port.log).to.deep.equal([]) // nothing before the flush
    subs.flush()
    expect(port.log).to.deep.equal(['sub a/dn a/ctl b/dn b/ctl'])
    expect(await outcome(a)).to.equal('pending')
    port.sent[0]!.done()
    expect(await outcome(a)).to.equal('resolved')
    expect(await outcome(b)).to.equal('resolved')
    expect(await outcome(subs.add(['a/dn']))).to.equal('resolved') // already subscribed: nothing to wait for
    subs.flush()
    expect(port.log).to.have.length(1)
    expect(subs.size).to.equal(4)
  })

  it('batches removals into one UNSUBSCRIBE, and sends nothing for a topic removed and wanted again', () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    subs.add(['a', 'b', 'c'])
    subs.flush()
    port.sent[0]!.done()
    subs.remove(['a', 'b'])
    subs.remove(['c'])
    subs.add(['c']) // back before the flush
    subs.flush()
    expect(port.log).to.deep.equal(['sub a b c', 'unsub a b'])
    expect(subs.size).to.equal(1)
  })

  it('unsubscribes a stray topic (a session left over) once, and leaves wanted or changing ones alone', async () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    void subs.add(['wanted'])
    subs.flush()
    port.sent[0]!.done()
    expect(subs.stray('wanted')).to.equal(false)
    expect(subs.stray('old')).to.equal(true)
    expect(subs.stray('old')).to.equal(false) // its UNSUBSCRIBE is on its way
    subs.flush()
    expect(port.log).to.deep.equal(['sub wanted', 'unsub old'])
    const again = subs.add(['old']) // the device is back while it is in flight: subscribed after
    subs.flush()
    port.sent[1]!.done()
    expect(port.log).to.deep.equal(['sub wanted', 'unsub old', 'sub old'])
    port.sent[2]!.done()
    expect(await outcome(again)).to.equal('resolved')
    expect(subs.size).to.equal(2)
  })

  it('forgets a topic added and removed before a flush without sending anything', () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    void subs.add(['a'])
    subs.remove(['a'])
    subs.flush()
    expect(port.log).to.deep.equal([])
    expect(subs.size).to.equal(0)
  })

  it('keeps one operation per topic in flight: a removal during its SUBSCRIBE is sent after the SUBACK', () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    void subs.add(['a'])
    subs.flush()
    subs.remove(['a'])
    subs.flush()
    expect(port.log).to.deep.equal(['sub a']) // busy: nothing more yet
    port.sent[0]!.done()
    expect(port.log).to.deep.equal(['sub a', 'unsub a'])
    void subs.add(['a'])
    subs.flush()
    expect(port.log).to.have.length(2) // the UNSUBSCRIBE is still in flight
    port.sent[1]!.done()
    expect(port.log).to.deep.equal(['sub a', 'unsub a', 'sub a'])
  })

  it('fails the waiting adds when the SUBSCRIBE fails, and subscribes again at the next add', async () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    const a = subs.add(['a'])
    subs.flush()
    port.sent[0]!.done(new Error('connection lost'))
    expect(await outcome(a)).to.equal('rejected: connection lost')
    const again = subs.add(['a'])
    subs.flush()
    expect(port.log).to.deep.equal(['sub a', 'sub a'])
    port.sent[1]!.done()
    expect(await outcome(again)).to.equal('resolved')
  })

  it('answers an add with the topics the broker refused in its SUBACK, tells of each, and asks again later', async () => {
    const port = new RecordingPort()
    const told: string[] = []
    const subs = new Subscriptions(port, 1, (topic, code) => told.push(`${topic} 0x${code.toString(16)}`))
    const a = subs.add(['a/dn', 'a/ctl'])
    const b = subs.add(['b/dn'])
    subs.flush()
    port.sent[0]!.done(undefined, [0x87, 1, 0x80])
    expect(await outcome(a)).to.equal('resolved, refused: a/dn')
    expect(await outcome(b)).to.equal('resolved, refused: b/dn')
    expect(told).to.deep.equal(['a/dn 0x87', 'b/dn 0x80'])
    expect(port.log).to.deep.equal(['sub a/dn a/ctl b/dn']) // not retried by itself
    const again = subs.add(['a/dn', 'a/ctl']) // a/ctl is subscribed: only a/dn is asked for
    subs.flush()
    expect(port.log).to.deep.equal(['sub a/dn a/ctl b/dn', 'sub a/dn'])
    port.sent[1]!.done(undefined, [1])
    expect(await outcome(again)).to.equal('resolved')
  })

  it('splits more than 500 topics over several packets, and restores every wanted topic after a reconnection', () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    const topics = Array.from({ length: 1200 }, (_, i) => `d${i}/dn`)
    void subs.add(topics)
    subs.flush()
    expect(port.sent.map((s) => s.topics.length)).to.deep.equal([500, 500, 200])
    for (const s of port.sent) s.done()
    subs.remove(['d0/dn'])
    subs.restore() // the broker forgot everything; d0/dn is no longer wanted
    expect(port.sent.slice(3).map((s) => s.topics.length)).to.deep.equal([500, 500, 199])
    expect(port.sent.slice(3).flatMap((s) => s.topics)).to.not.include('d0/dn')
  })
})

describe('pacer', () => {
  it('runs a lone request on the next turn, and requests within the window together at its end', async () => {
    const ran = new Inbox<number>('pacer runs')
    const pacer = new Pacer(200, () => ran.push(performance.now()))
    pacer.request()
    expect(ran.history).to.have.length(0)
    await new Promise((resolve) => setImmediate(resolve))
    const first = await ran.take(() => true, 0)
    pacer.request()
    pacer.request()
    pacer.request()
    await new Promise((resolve) => setImmediate(resolve))
    expect(ran.history, 'inside the window: waits for its end').to.have.length(1)
    const second = await ran.take(() => true, 2000)
    expect(ran.history, 'one run for the three').to.have.length(2)
    // Not before the window's end: timers truncate their delay to whole milliseconds, hence the slack.
    expect(second - first).to.be.at.least(195)
  })
})

describe('broker connection of a device', () => {
  it('is the same for an id every time, within range, and spreads ids over the connections', () => {
    expect(laneIndex('anything', 1)).to.equal(0)
    const counts = [0, 0, 0, 0]
    for (let i = 0; i < 4000; i++) {
      const lane = laneIndex(`sensor-${i}`, 4)
      expect(lane).to.equal(laneIndex(`sensor-${i}`, 4))
      counts[lane]!++
    }
    for (const n of counts) expect(n).to.be.within(800, 1200) // 1000 each if even
  })
})

describe('subscriptions: an add whose topic is removed before the broker confirms it', () => {
  it('settles when the SUBACK comes (and the topic is unsubscribed again)', async () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    const added = subs.add(['h/dn', 'h/status'])
    subs.flush()
    subs.remove(['h/dn', 'h/status']) // e.g. the retained presence came before the SUBACK
    subs.flush()
    expect(await outcome(added)).to.equal('pending')
    port.sent[0]!.done()
    expect(await outcome(added)).to.equal('resolved')
    expect(port.log).to.deep.equal(['sub h/dn h/status', 'unsub h/dn', 'unsub h/status'])
    expect(subs.size).to.equal(0)
  })

  it('settles at once when removed before the flush sent it', async () => {
    const port = new RecordingPort()
    const subs = new Subscriptions(port, 1)
    const added = subs.add(['h/dn'])
    subs.remove(['h/dn'])
    subs.flush()
    expect(await outcome(added)).to.equal('resolved')
    expect(port.log).to.deep.equal([])
  })
})
