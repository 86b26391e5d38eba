/**
 * The start's check of a data directory's downlink stores against the number of workers
 * (adapters/store-layout.ts), on real SQLite files written by the gateway's own store.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import { STORE_FILE } from '../../src/adapters/sqlite-store.js'
import { checkStoreLayout, LAYOUT_FILE } from '../../src/adapters/store-layout.js'
import { laneIndex } from '../../src/bridge/lanes.js'
import { silentLogger } from '../../src/log.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { writeStore } from '../helpers/store.js'

/** Registry ids that fall to worker `index` (0-based) of `count`, `n` of them. */
function idsOf(index: number, count: number, n: number): string[] {
  const out: string[] = []
  for (let i = 0; out.length < n; i++) if (laneIndex(`d-${i}`, count) === index) out.push(`d-${i}`)
  return out
}

describe('the data directory checked against the number of workers', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'htgw-layout-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it("says what the workers' stores keep when the gateway runs as one process, and records the layout", async () => {
    await writeStore(join(dir, 'w1'), { 'dev-1': 2 })
    await writeStore(join(dir, 'w2'), { 'dev-2': 1 }, ['dev-9'])
    const log = captureLogger()
    const stranded = checkStoreLayout(dir, 1, () => ['dev-1', 'dev-2'], log.logger)
    expect(stranded).to.deep.equal([
      { path: join(dir, 'w1', STORE_FILE), why: 'other_layout', messages: 2, devices: 1 },
      { path: join(dir, 'w2', STORE_FILE), why: 'other_layout', messages: 1, devices: 2 },
    ])
    const warned = log.lines.filter((l) => l.startsWith('warn downlink store of another number of workers'))
    expect(warned).to.have.length(2)
    expect(warned[0])
      .to.contain(join(dir, 'w1', STORE_FILE))
      .and.contain('"previousWorkers":2')
    expect(JSON.parse(readFileSync(join(dir, LAYOUT_FILE), 'utf8'))).to.deep.equal({ workers: 1 })
  })

  it("says what the one process's store keeps when workers start on its data directory", async () => {
    await writeStore(dir, { 'dev-3': 3 })
    await writeStore(join(dir, 'w1'), {})
    const stranded = checkStoreLayout(dir, 2, () => ['dev-3'], silentLogger)
    expect(stranded).to.deep.equal([
      { path: join(dir, STORE_FILE), why: 'other_layout', messages: 3, devices: 1 },
    ])
  })

  it('says what a worker kept for registry devices that fall to another worker once their number changed', async () => {
    // Three workers before (recorded), two now: w3's store is not read, and w1 kept for devices of
    // its old share of which some now fall to w2.
    const staying = idsOf(0, 2, 2).filter((id) => laneIndex(id, 3) === 0)
    const moving = idsOf(0, 3, 20)
      .filter((id) => laneIndex(id, 2) === 1)
      .slice(0, 2)
    expect(moving, 'registry ids that move from w1 to w2').to.have.length(2)
    // And w2 kept for one of its old share that now falls to w1.
    const toW1 = idsOf(1, 3, 20).find((id) => laneIndex(id, 2) === 0)!
    await writeStore(join(dir, 'w1'), Object.fromEntries([...staying, ...moving].map((id) => [id, 2])))
    await writeStore(join(dir, 'w2'), { [toW1]: 3 })
    await writeStore(join(dir, 'w3'), { [moving[0]!]: 1 })
    writeFileSync(join(dir, LAYOUT_FILE), JSON.stringify({ workers: 3 }))
    const log = captureLogger()
    // The registry as the gateway gives it: an iterator, read once for every store.
    const registry = [...staying, ...moving, toW1]
    const stranded = checkStoreLayout(dir, 2, () => registry.values(), log.logger)
    expect(stranded).to.deep.equal([
      { path: join(dir, 'w1', STORE_FILE), why: 'share_moved', messages: 4, devices: 2 },
      { path: join(dir, 'w2', STORE_FILE), why: 'share_moved', messages: 3, devices: 1 },
      { path: join(dir, 'w3', STORE_FILE), why: 'other_layout', messages: 1, devices: 1 },
    ])
    expect(log.lines.some((l) => l.startsWith('warn workers changed') && l.includes('"previousWorkers":3')))
      .to.be.true
    // Recorded: the next start with two workers finds the shares as they are.
    expect(checkStoreLayout(dir, 2, () => registry, silentLogger).map((s) => s.why)).to.deep.equal([
      'other_layout',
    ])
  })

  it('says nothing when the stores are those of this layout, and skips a store it cannot read', async () => {
    await writeStore(join(dir, 'w1'), { 'dev-1': 1 })
    await writeStore(join(dir, 'w2'), { 'dev-2': 1 })
    const quiet = captureLogger()
    expect(checkStoreLayout(dir, 2, () => ['dev-1', 'dev-2'], quiet.logger)).to.deep.equal([])
    expect(quiet.lines.filter((l) => l.startsWith('warn'))).to.deep.equal([])
    mkdirSync(join(dir, 'w3'))
    writeFileSync(join(dir, 'w3', STORE_FILE), 'this is not SQLite'.repeat(100))
    const log = captureLogger()
    expect(checkStoreLayout(dir, 2, () => [], log.logger)).to.deep.equal([])
    expect(log.lines.find((l) => l.startsWith('warn downlink store not checked'))).to.contain(
      join(dir, 'w3', STORE_FILE),
    )
  })
})
