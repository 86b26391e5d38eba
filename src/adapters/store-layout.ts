/**
 * Which downlink stores a data directory holds, against the layout of this run: a gateway of one
 * process keeps its store in `dataDir` itself, the N workers of a primary in `dataDir/w1` … `wN`,
 * each for the devices it served and for the registry's devices whose id falls to it (laneIndex
 * over N). A store of another layout is not read by anyone, and when N changes the registry's
 * devices fall to other workers: what was kept for them waits where it was. Nothing is moved (two
 * keepers of one device would each deliver its messages); the start says what waits, where, and
 * for how many devices, and records N (`layout.json`) to tell the next start what the stores are.
 */
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { laneIndex } from '../bridge/lanes.js'
import type { Logger } from '../log.js'
import { readStore, STORE_FILE } from './sqlite-store.js'

export const LAYOUT_FILE = 'layout.json'

/** What waits unread in a data directory's stores, as {@link checkStoreLayout} found it. */
export interface StrandedStore {
  /** The store file. */
  readonly path: string
  /** Why it is not read: a store of another number of workers, or devices that now fall to another worker. */
  readonly why: 'other_layout' | 'share_moved'
  readonly messages: number
  readonly devices: number
}

/**
 * Checks `dataDir`'s stores against `workers` (1: one process) and logs at warn what will not be
 * delivered from them; then records `workers`. `registry`: the registry's device ids (a worker
 * holds those of its share, and keeps for the others only once it served them), asked for only
 * when the shares moved.
 */
export function checkStoreLayout(
  dataDir: string,
  workers: number,
  registry: () => Iterable<string>,
  logger: Logger,
): StrandedStore[] {
  if (!existsSync(dataDir)) return []
  const stores = findStores(dataDir)
  const previous = recordedLayout(dataDir, logger) ?? inferredLayout(stores)
  const sharesMoved = workers > 1 && previous !== undefined && previous > 1 && previous !== workers
  const ids = sharesMoved ? new Set(registry()) : new Set<string>()
  const stranded: StrandedStore[] = []
  for (const [index, path] of stores) {
    // index 0: the one-process store; k: worker k's.
    const inLayout = workers === 1 ? index === 0 : index >= 1 && index <= workers
    // Its own devices' store, under the same shares: read by the worker itself, and only there.
    if (inLayout && !sharesMoved) continue
    let contents: ReturnType<typeof readStore>
    try {
      contents = readStore(path)
    } catch (err) {
      logger.warn('downlink store not checked: it cannot be read', { path, error: (err as Error).message })
      continue
    }
    if (!inLayout) {
      if (contents.kept.size > 0 || contents.remembered.size > 0) {
        stranded.push({
          path,
          why: 'other_layout',
          messages: sum(contents.kept.values()),
          devices: new Set([...contents.kept.keys(), ...contents.remembered]).size,
        })
      }
      continue
    }
    // The registry's devices this worker held by its old share and holds no more: what it kept
    // for them is delivered only if they log in to it again.
    let messages = 0
    let devices = 0
    for (const [id, n] of contents.kept) {
      if (!ids.has(id) || contents.remembered.has(id) || laneIndex(id, workers) === index - 1) continue
      messages += n
      devices++
    }
    if (messages > 0) stranded.push({ path, why: 'share_moved', messages, devices })
  }
  for (const s of stranded) {
    logger.warn(
      s.why === 'other_layout'
        ? 'downlink store of another number of workers: what it keeps is not delivered while workers stays at this'
        : 'workers changed: messages kept for registry devices that now fall to another worker are delivered only if they log in to this one',
      {
        path: s.path,
        messages: s.messages,
        devices: s.devices,
        workers,
        previousWorkers: previous ?? 'unknown',
      },
    )
  }
  record(dataDir, workers, logger)
  return stranded
}

/** The stores in `dataDir`: 0 for its own, k for `w<k>`'s. */
function findStores(dataDir: string): Map<number, string> {
  const stores = new Map<number, string>()
  if (existsSync(join(dataDir, STORE_FILE))) stores.set(0, join(dataDir, STORE_FILE))
  for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
    const m = /^w([1-9]\d*)$/.exec(entry.name)
    const file = join(dataDir, entry.name, STORE_FILE)
    if (m !== null && entry.isDirectory() && existsSync(file)) stores.set(Number(m[1]), file)
  }
  return new Map([...stores].sort((a, b) => a[0] - b[0]))
}

function recordedLayout(dataDir: string, logger: Logger): number | undefined {
  const file = join(dataDir, LAYOUT_FILE)
  if (!existsSync(file)) return undefined
  try {
    const { workers } = JSON.parse(readFileSync(file, 'utf8')) as { workers?: unknown }
    if (typeof workers === 'number' && Number.isInteger(workers) && workers >= 1) return workers
  } catch {
    // unreadable: as if absent
  }
  logger.warn('data directory layout record unreadable: ignored', { path: file })
  return undefined
}

/** Before `layout.json`: the workers' stores say how many there were, else the one store. */
function inferredLayout(stores: ReadonlyMap<number, string>): number | undefined {
  const workers = Math.max(0, ...stores.keys())
  if (workers > 0) return workers
  return stores.has(0) ? 1 : undefined
}

function record(dataDir: string, workers: number, logger: Logger): void {
  const file = join(dataDir, LAYOUT_FILE)
  try {
    writeFileSync(`${file}.tmp`, `${JSON.stringify({ workers })}\n`)
    renameSync(`${file}.tmp`, file)
  } catch (err) {
    logger.warn('data directory layout not recorded', { path: file, error: (err as Error).message })
  }
}

function sum(values: Iterable<number>): number {
  let n = 0
  for (const v of values) n += v
  return n
}
