import { spawnSync } from 'node:child_process'
import { expect } from 'chai'
import { heapPolicy } from '../../src/heap-policy.js'

describe('heap policy of the gateway process (RSS under connection churn)', () => {
  it('sets a full GC at 10 % old-generation growth unless the operator chose their own', () => {
    expect(heapPolicy([])).to.equal('--heap-growing-percent=10')
    expect(heapPolicy(['--max-old-space-size=512', '--enable-source-maps'])).to.equal(
      '--heap-growing-percent=10',
    )
    expect(heapPolicy(['--heap-growing-percent=0'])).to.equal(undefined)
    expect(heapPolicy(['--heap_growing_percent=25'])).to.equal(undefined)
  })

  it('names a flag this Node.js accepts (node exits 9 on an unknown V8 option)', () => {
    const run = spawnSync(process.execPath, [heapPolicy([])!, '-e', ''], { encoding: 'utf8' })
    expect(run.status, run.stderr).to.equal(0)
    const unknown = spawnSync(process.execPath, ['--heap-growing-percentage=10', '-e', ''], {
      encoding: 'utf8',
    })
    expect(unknown.status).to.not.equal(0) // the check above can fail
  })
})
