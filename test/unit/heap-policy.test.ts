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

  it('hands growth to V8 during a login ramp, then restores 10 % once it settles', () => {
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
    expect(calls).to.deep.equal([STEADY, RAMPING, STEADY])
    expect(policy.isRamping).to.equal(false)
    policy.tick(30_000, 1000) // the next ramp
    expect(calls).to.deep.equal([STEADY, RAMPING, STEADY, RAMPING])
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

  it('changes how often V8 runs full GCs when set at run time (flags are not frozen here)', () => {
    // Retains 2M objects while counting mark-compacts, after setting the flag at run time.
    const script = `
      const { setFlagsFromString } = require('node:v8')
      const { PerformanceObserver, constants } = require('node:perf_hooks')
      setFlagsFromString(process.env.HEAP_FLAG)
      let majors = 0
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
      }).observe({ entryTypes: ['gc'] })
      const keep = []
      const step = () => {
        for (let k = 0; k < 20000; k++) keep.push({ k, s: 'x' + k })
        if (keep.length < 2000000) setImmediate(step)
        else setTimeout(() => console.log(majors), 50)
      }
      step()`
    const majors = (flag: string) => {
      const run = spawnSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        env: { ...process.env, HEAP_FLAG: flag },
      })
      expect(run.status, run.stderr).to.equal(0)
      return Number(run.stdout.trim())
    }
    const steady = majors(STEADY)
    const ramping = majors(RAMPING)
    expect(steady, `full GCs: ${steady} at 10 %, ${ramping} at V8's policy`).to.be.at.least(ramping + 2)
  })
})
