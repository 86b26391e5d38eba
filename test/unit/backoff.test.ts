import { expect } from 'chai'
import { Backoff } from '../../src/adapters/broker-link/backoff.js'

describe('broker link: reconnection backoff', () => {
  it('starts at the first step, doubles to the cap, each delay between half and all of its step', () => {
    const low = new Backoff(1000, 30_000, () => 0)
    const high = new Backoff(1000, 30_000, () => 0.999999)
    const lows = Array.from({ length: 8 }, () => low.next())
    const highs = Array.from({ length: 8 }, () => high.next())
    expect(lows).to.deep.equal([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000])
    for (const [i, h] of highs.entries()) expect(h).to.be.closeTo(lows[i]! * 2, 1)
  })

  it('starts again at the first step once reset (a connection that held)', () => {
    const b = new Backoff(200, 30_000, () => 0.5)
    b.next()
    b.next()
    expect(b.next()).to.equal(600) // step 800
    b.reset()
    expect(b.next()).to.equal(150) // step 200
  })
})
