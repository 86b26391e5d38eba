/**
 * Summarises a gateway profile written by `npm run bench -- --profile DIR`:
 *
 *   node --import tsx bench/tools/profile-summary.ts DIR/embedded-qos1.cpuprofile [--top 25]
 *   node --import tsx bench/tools/profile-summary.ts DIR/embedded-qos1.heapprofile [--top 25]
 *
 * CPU: self time per function, as % of the busy samples (idle excluded), grouped by who owns the
 * code (gateway src/, MQTT.js, mqtt-packet, Aedes, Node internals, V8 builtins, GC).
 * Allocations: sampled bytes per allocation site (collected objects included), same grouping.
 * Locations in the built gateway (dist/*.js) are mapped back to src/*.ts through the source maps.
 */
import { existsSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface CpuNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: CpuNode[]
  samples: number[]
  timeDeltas: number[]
}

interface HeapNode {
  id: number
  callFrame: CallFrame
  selfSize: number
  children: HeapNode[]
}

interface HeapProfile {
  head: HeapNode
  samples: { size: number; nodeId: number }[]
}

const maps = new Map<string, SourceMap | null>()

function sourceMapFor(file: string): SourceMap | null {
  if (!maps.has(file)) {
    const path = `${file}.map`
    maps.set(file, existsSync(path) ? new SourceMap(JSON.parse(readFileSync(path, 'utf8'))) : null)
  }
  return maps.get(file)!
}

/** Where a frame's code lives, as `file:line` (1-based), mapped to src/ for the built gateway. */
function location(frame: CallFrame): string {
  if (!frame.url) return ''
  let file = frame.url
  if (file.startsWith('file://')) file = fileURLToPath(file)
  if (!file.startsWith('/')) return `${file}:${frame.lineNumber + 1}`
  const map = file.includes('/node_modules/') ? null : sourceMapFor(file)
  const entry = map?.findEntry(frame.lineNumber, frame.columnNumber) as
    | { originalSource?: string; originalLine?: number }
    | undefined
  if (entry?.originalSource) {
    const src = entry.originalSource.startsWith('file://')
      ? fileURLToPath(entry.originalSource)
      : resolve(dirname(file), entry.originalSource)
    return `${shorten(src)}:${(entry.originalLine ?? 0) + 1}`
  }
  return `${shorten(file)}:${frame.lineNumber + 1}`
}

function shorten(path: string): string {
  const nm = path.lastIndexOf('/node_modules/')
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length)
  const src = path.lastIndexOf('/src/')
  if (src >= 0) return path.slice(src + 1)
  return relative(process.cwd(), path)
}

const AEDES =
  /\/node_modules\/(aedes[^/]*|mqemitter|qlobber|fastparallel|fastfall|fastseries|reusify|hyperid|retimer|end-of-stream|uuid-parse)\//

function group(frame: CallFrame): string {
  const { url, functionName } = frame
  if (functionName === '(garbage collector)') return 'GC'
  if (functionName === '(idle)') return 'idle'
  if (functionName === '(program)') return 'program (native, unattributed)'
  if (functionName === '(root)') return 'root'
  if (!url) return 'V8 builtins / native'
  if (url.startsWith('node:')) return 'Node internals'
  if (url.includes('/node_modules/mqtt-packet/')) return 'mqtt-packet (MQTT.js and Aedes)'
  if (url.includes('/node_modules/mqtt/')) return 'MQTT.js'
  if (AEDES.test(url)) return 'Aedes'
  if (/\/node_modules\/(winston|logform|triple-beam|@colors|fecha|safe-stable-stringify)\//.test(url))
    return 'winston'
  if (url.includes('/node_modules/')) return 'other packages'
  if (url.includes('data:')) return 'bench probe'
  return 'gateway (src/)'
}

interface Row {
  name: string
  where: string
  group: string
  weight: number
}

function aggregate(entries: { frame: CallFrame; weight: number }[]): {
  rows: Row[]
  groups: Map<string, number>
} {
  const byKey = new Map<string, Row>()
  const groups = new Map<string, number>()
  for (const { frame, weight } of entries) {
    if (weight === 0) continue
    const g = group(frame)
    groups.set(g, (groups.get(g) ?? 0) + weight)
    const where = location(frame)
    const name = frame.functionName || '(anonymous)'
    const key = `${name}@${where}`
    const row = byKey.get(key) ?? { name, where, group: g, weight: 0 }
    row.weight += weight
    byKey.set(key, row)
  }
  return { rows: [...byKey.values()].sort((a, b) => b.weight - a.weight), groups }
}

function print(
  title: string,
  total: number,
  rows: Row[],
  groups: Map<string, number>,
  top: number,
  unit: string,
): void {
  const pct = (w: number) => `${((w / total) * 100).toFixed(1).padStart(5)} %`
  process.stdout.write(`${title}\n\nBy owner:\n`)
  for (const [g, w] of [...groups].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${pct(w)}  ${g}\n`)
  process.stdout.write(`\nTop ${top} by self ${unit}:\n`)
  for (const r of rows.slice(0, top)) {
    process.stdout.write(`  ${pct(r.weight)}  ${r.name}  ${r.where}  [${r.group}]\n`)
  }
}

function cpu(profile: CpuProfile, top: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const counts = new Map<number, number>()
  // Weight each sample by the time it stands for (timeDeltas), not just by count.
  for (const [i, id] of profile.samples.entries())
    counts.set(id, (counts.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  const entries = [...counts].map(([id, weight]) => ({ frame: byId.get(id)!.callFrame, weight }))
  const all = entries.reduce((n, e) => n + e.weight, 0)
  const busy = entries.filter((e) => e.frame.functionName !== '(idle)')
  const busyTotal = busy.reduce((n, e) => n + e.weight, 0)
  const { rows, groups } = aggregate(busy)
  print(
    `CPU: ${(all / 1e6).toFixed(2)} s profiled, ${((busyTotal / all) * 100).toFixed(1)} % busy; shares below are of the busy time`,
    busyTotal,
    rows,
    groups,
    top,
    'time',
  )
}

function heap(profile: HeapProfile, top: number): void {
  const byId = new Map<number, HeapNode>()
  const walk = (n: HeapNode) => {
    byId.set(n.id, n)
    for (const c of n.children) walk(c)
  }
  walk(profile.head)
  const bytes = new Map<number, number>()
  for (const s of profile.samples) bytes.set(s.nodeId, (bytes.get(s.nodeId) ?? 0) + s.size)
  const entries = [...bytes].map(([id, weight]) => ({ frame: byId.get(id)!.callFrame, weight }))
  const total = entries.reduce((n, e) => n + e.weight, 0)
  const { rows, groups } = aggregate(entries)
  print(
    `Allocations: ${profile.samples.length} samples, ${(total / 2 ** 20).toFixed(1)} MiB sampled (collected objects included)`,
    total,
    rows,
    groups,
    top,
    'bytes allocated',
  )
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } })
const top = Number(values.top ?? 25)
for (const file of positionals) {
  const data = JSON.parse(readFileSync(file, 'utf8'))
  process.stdout.write(`== ${join(file)}\n`)
  if (file.endsWith('.heapprofile')) heap(data as HeapProfile, top)
  else cpu(data as CpuProfile, top)
  process.stdout.write('\n')
}
