import { expect } from 'chai'
import { DownlinkStore, type Eviction, type Kept, MemoryPersistence } from '../../src/delivery/store.js'

describe('downlink store: order, bounds, time to live (store-and-forward)', () => {
  const evicted: Array<[string, Eviction]> = []
  const make = (
    limits: Partial<{ messages: number; bytes: number; totalBytes: number; ttlMs: number }> = {},
  ) => {
    evicted.length = 0
    return new DownlinkStore(
      new MemoryPersistence(),
      { messages: 100, bytes: 65_536, totalBytes: 1 << 20, ttlMs: 60_000, ...limits },
      (k, why) => evicted.push([k.body.toString(), why]),
    )
  }
  const bodies = (kept: readonly Kept[]) => kept.map((k) => k.body.toString())

  it('keeps per device in order of arrival, and forgets what is removed', () => {
    const s = make()
    const a1 = s.keep('a', Buffer.from('a1'), 0)
    s.keep('b', Buffer.from('b1'), 0)
    s.keep('a', Buffer.from('a2'), 0)
    expect(bodies(s.pending('a'))).to.deep.equal(['a1', 'a2'])
    s.remove(a1)
    s.remove(a1) // twice: nothing more happens
    expect(bodies(s.pending('a'))).to.deep.equal(['a2'])
    expect([s.size, s.totalBytes]).to.deep.equal([2, 4])
    expect(bodies(s.take('a'))).to.deep.equal(['a2'])
    expect(s.pending('a')).to.deep.equal([])
  })

  it('drops the oldest past offlineQueueMessages or offlineQueueBytes of a device, and tells why', () => {
    const s = make({ messages: 2, bytes: 10 })
    for (const m of ['m1', 'm2', 'm3']) s.keep('a', Buffer.from(m), 0)
    expect(bodies(s.pending('a'))).to.deep.equal(['m2', 'm3'])
    s.keep('a', Buffer.from('x'.repeat(9)), 0) // 2 + 9 > 10 bytes
    expect(bodies(s.pending('a'))).to.deep.equal(['x'.repeat(9)])
    expect(evicted).to.deep.equal([
      ['m1', 'queue_full'],
      ['m2', 'queue_full'],
      ['m3', 'queue_full'],
    ])
  })

  it('drops the oldest of all devices past offlineStoreBytes', () => {
    const s = make({ totalBytes: 6 })
    s.keep('a', Buffer.from('a1'), 0)
    s.keep('b', Buffer.from('b1'), 0)
    s.keep('c', Buffer.from('c1'), 0)
    s.keep('b', Buffer.from('b2'), 0)
    expect(evicted).to.deep.equal([['a1', 'store_full']])
    expect(s.totalBytes).to.equal(6)
  })

  it('expires what waited longer than the time to live, oldest first, whatever the device', () => {
    const s = make({ ttlMs: 1000 })
    s.keep('a', Buffer.from('old'), 0)
    s.keep('b', Buffer.from('mid'), 500)
    s.keep('a', Buffer.from('new'), 1500)
    expect(s.expire(1600)).to.equal(2)
    expect(evicted).to.deep.equal([
      ['old', 'expired'],
      ['mid', 'expired'],
    ])
    expect(bodies(s.pending('a'))).to.deep.equal(['new'])
  })

  it('stays consistent through many out-of-order removals (compaction)', () => {
    const s = make({ messages: 10_000, ttlMs: 1000 })
    const kept = Array.from({ length: 5000 }, (_, k) => s.keep(`d${k % 7}`, Buffer.from(String(k)), k))
    for (let k = 0; k < kept.length; k += 2) s.remove(kept[k]!)
    expect(s.size).to.equal(2500)
    // Left: the odd ones; those kept before 3001 are past the time to live at 4001.
    expect(s.expire(4001)).to.equal(1500)
    expect(s.size).to.equal(1000)
    expect(s.pending('d1')[0]!.at).to.be.above(3000)
  })
})
