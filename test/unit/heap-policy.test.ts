import { spawnSync } from 'node:child_process'
import { expect } from 'chai'
import {
  HeapPolicy,
  operatorChoseHeapGrowth,
  QUIET_TICKS,
  RAMP_PER_S,
  RAMPING,
  STEADY,
} from '../../src/heap-policy.js'

/** Records what the policy did to V8, in order. */
function recorder() {
  const calls: string[] = []
  return {
    calls,
    controls: {
      setFlags: (flags: string) => calls.push(flags),
      gc: () => calls.push('gc'),
      log: () => {},
    },
  }
}

describe('heap policy of the gateway process (RSS under churn, CPU in login ramps)', () => {
  it('stays off when the operator set the heap growth on the command line', () => {
    expect(operatorChoseHeapGrowth([])).to.equal(false)
    expect(operatorChoseHeapGrowth(['--max-old-space-size=512', '--enable-source-maps'])).to.equal(false)
    expect(operatorChoseHeapGrowth(['--heap-growing-percent=0'])).to.equal(true)
    expect(operatorChoseHeapGrowth(['--heap_growing_percent=25'])).to.equal(true)
  })

  it('starts with a full GC per 10 % growth, and keeps it while connections come slowly or go', () => {
    const { calls, controls } = recorder()
    const policy = new HeapPolicy(controls, 0)
    for (let i = 1; i <= 20; i++) policy.tick(i * (RAMP_PER_S - 1), 1000)
    policy.tick(0, 1000)
    expect(calls).to.deep.equal([STEADY])
    expect(policy.isRamping).to.equal(false)
  })

  it('hands growth to V8 during a login ramp, then restores 10 % with one full GC once it settles', () => {
    const { calls, controls } = recorder()
    const policy = new HeapPolicy(controls, 100)
    policy.tick(100 + 2 * RAMP_PER_S, 2000) // exactly the ramp rate, measured over a late tick
    expect(calls).to.deep.equal([STEADY, RAMPING])
    expect(policy.isRamping).to.equal(true)
    policy.tick(20_000, 1000)
    policy.tick(20_010, 1000) // one quiet tick: a pause in the ramp, not its end
    expect(calls).to.deep.equal([STEADY, RAMPING])
    policy.tick(25_000, 1000) // ramping again: the quiet count starts over
    for (let i = 1; i < QUIET_TICKS; i++) policy.tick(25_000, 1000)
    expect(calls).to.deep.equal([STEADY, RAMPING])
    policy.tick(25_000, 1000)
    expect(calls).to.deep.equal([STEADY, RAMPING, STEADY, 'gc'])
    expect(policy.isRamping).to.equal(false)
    policy.tick(30_000, 1000) // the next ramp
    expect(calls).to.deep.equal([STEADY, RAMPING, STEADY, 'gc', RAMPING])
  })

  it('restores 10 % without a GC where none is available', () => {
    const { calls, controls } = recorder()
    const policy = new HeapPolicy({ ...controls, gc: undefined }, 0)
    policy.tick(10_000, 1000)
    for (let i = 0; i < QUIET_TICKS; i++) policy.tick(10_000, 1000)
    expect(calls).to.deep.equal([STEADY, RAMPING, STEADY])
  })

  it('names flags this Node.js accepts (node exits 9 on an unknown V8 option)', () => {
    for (const flag of [STEADY, RAMPING]) {
      const run = spawnSync(process.execPath, [flag, '-e', ''], { encoding: 'utf8' })
      expect(run.status, run.stderr).to.equal(0)
    }
    const unknown = spawnSync(process.execPath, ['--heap-growing-percentage=10', '-e', ''], {
      encoding: 'utf8',
    })
    expect(unknown.status).to.not.equal(0) // the check above can fail
  })

  it('reaches a full GC at run time without --expose-gc, leaving the globals alone', () => {
    const script = `
      import('./src/heap-policy.ts').then(({ fullGc }) => {
        const gc = fullGc()
        const before = process.memoryUsage().heapUsed
        let junk = []; for (let i = 0; i < 300000; i++) junk.push({ i }); junk = null
        gc()
        const after = process.memoryUsage().heapUsed
        console.log(JSON.stringify({ type: typeof gc, global: typeof globalThis.gc, grew: after - before }))
      })`
    const run = spawnSync(process.execPath, ['--import=tsx', '-e', script], { encoding: 'utf8' })
    expect(run.status, run.stderr).to.equal(0)
    const out = JSON.parse(run.stdout) as { type: string; global: string; grew: number }
    expect(out.type).to.equal('function')
    expect(out.global).to.equal('undefined')
    // 300,000 objects are over 10 MB; a real full GC leaves well under 2 MB of them.
    expect(out.grew).to.be.below(2 * 1024 * 1024)
  })
})
