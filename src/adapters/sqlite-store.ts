/**
 * The downlink store on disk: SQLite (better-sqlite3, synchronous and embedded) in the gateway's
 * `dataDir`. What is kept in one turn of the event loop is written as one row (a batch) in one
 * transaction, committed on the next turn; a message is acknowledged to the broker only after its
 * commit. A row is deleted once every message in it has left the store, so a message costs the
 * disk a share of one insert and one delete, not one each. WAL with `synchronous=NORMAL`: a commit
 * survives the gateway being killed (SIGKILL, a crash), though not the machine losing power
 * before the OS writes it out. After a crash, a message that had left a row still holding others
 * comes back (at least once); a clean close rewrites those rows first.
 */
import { mkdirSync, renameSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import type { HeldDevice, Kept, Persistence } from '../delivery/store.js'
import { MemoryPersistence } from '../delivery/store.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'

export const STORE_FILE = 'downlinks.sqlite'

/** The layout below; a file with another `user_version` is not read. */
const SCHEMA = 1

/** One row: the messages kept in one turn (each knows its row: `Kept.written`). */
interface Batch {
  readonly id: number
  /** Messages when written. */
  readonly written: number
  /** Of those, still in the store: at 0 the row goes. */
  live: number
}

class SqlitePersistence implements Persistence {
  readonly durable = true
  private readonly insert: Database.Statement
  private readonly del: Database.Statement
  private readonly upsert: Database.Statement
  private readonly unremember: Database.Statement
  private readonly beginTx: Database.Statement
  private readonly commitTx: Database.Statement
  private open = false
  private waiters: (() => void)[] = []
  /** Kept this turn, written at its commit. */
  private turn: Kept[] = []
  private readonly loaded: { kept: Kept[]; devices: HeldDevice[] }

  /** Opens (creating) the file and reads it whole: a corrupt file throws here. */
  constructor(
    private readonly db: Database.Database,
    private readonly logger: Logger,
  ) {
    const version = db.pragma('user_version', { simple: true }) as number
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as {
      n: number
    }
    if (version !== SCHEMA && tables.n > 0)
      throw new GatewayError('HT_ERR_STORE', `not a downlink store of this version (${version})`)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(`
      CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, username TEXT NOT NULL);
      PRAGMA user_version = ${SCHEMA};
    `)
    this.insert = db.prepare('INSERT INTO batches (id, data) VALUES (?, ?)')
    this.del = db.prepare('DELETE FROM batches WHERE id = ?')
    this.upsert = db.prepare('INSERT OR REPLACE INTO devices (device, username) VALUES (?, ?)')
    this.unremember = db.prepare('DELETE FROM devices WHERE device = ?')
    this.beginTx = db.prepare('BEGIN')
    this.commitTx = db.prepare('COMMIT')
    const kept: Kept[] = []
    for (const row of db.prepare('SELECT id, data FROM batches ORDER BY id').all() as {
      id: number
      data: Buffer
    }[]) {
      const messages = decode(row.data)
      this.track(row.id, messages)
      for (const k of messages) kept.push(k)
    }
    const devices = db.prepare('SELECT device, username FROM devices').all() as {
      device: string
      username: string
    }[]
    this.loaded = { kept, devices: devices.map((d) => ({ deviceId: d.device, username: d.username })) }
  }

  load(): { kept: Kept[]; devices: HeldDevice[] } {
    return this.loaded
  }

  add(kept: Kept): void {
    this.begin()
    this.turn.push(kept)
  }

  remove(kept: Kept): void {
    const batch = kept.written as Batch | undefined
    if (batch === undefined) return // kept this turn: its commit leaves it out
    kept.written = undefined
    if (--batch.live > 0) return
    this.begin()
    this.del.run(batch.id)
  }

  remember(device: HeldDevice): void {
    this.begin()
    this.upsert.run(device.deviceId, device.username)
  }

  forget(deviceId: string): void {
    this.begin()
    this.unremember.run(deviceId)
  }

  whenWritten(done: () => void): void {
    if (this.open) this.waiters.push(done)
    else done()
  }

  /** Rewrites the rows holding messages that left, so that none comes back at the next start. */
  close(live: Iterable<Kept>): void {
    this.begin()
    const rewritten = new Set<Batch>()
    for (const k of live) {
      const batch = k.written as Batch | undefined
      if (batch === undefined || batch.live === batch.written) continue
      if (!rewritten.has(batch)) this.del.run(batch.id)
      rewritten.add(batch)
      this.turn.push(k)
    }
    this.commit()
    this.db.close()
  }

  private track(id: number, messages: readonly Kept[]): void {
    const batch: Batch = { id, written: messages.length, live: messages.length }
    for (const k of messages) k.written = batch
  }

  private begin(): void {
    if (this.open) return
    this.beginTx.run()
    this.open = true
    setImmediate(this.commit)
  }

  private readonly commit = (): void => {
    if (!this.open) return
    this.open = false
    try {
      const live = this.turn.filter((k) => !k.gone).sort((a, b) => a.seq - b.seq)
      this.turn = []
      if (live.length > 0) {
        this.insert.run(live[0]!.seq, encode(live))
        this.track(live[0]!.seq, live)
      }
      this.commitTx.run()
    } catch (err) {
      // The disk refused (full, gone): what was kept stays in memory, and is delivered from there.
      this.logger.error('downlink store: write failed, kept in memory only', {
        error: (err as Error).message,
      })
      if (this.db.inTransaction) this.db.exec('ROLLBACK')
    }
    const waiters = this.waiters
    this.waiters = []
    for (const done of waiters) done()
  }
}

/** [seq f64][at f64][id length u16][id][body length u32][body], one after the other. */
function encode(messages: readonly Kept[]): Buffer {
  let size = 0
  for (const k of messages) size += 22 + Buffer.byteLength(k.deviceId) + k.bytes
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const k of messages) {
    at = out.writeDoubleLE(k.seq, at)
    at = out.writeDoubleLE(k.at, at)
    const idLength = out.write(k.deviceId, at + 2)
    at = out.writeUInt16LE(idLength, at) + idLength
    at = out.writeUInt32LE(k.bytes, at)
    at += typeof k.body === 'string' ? out.write(k.body, at) : k.body.copy(out, at)
  }
  return out
}

function decode(data: Buffer): Kept[] {
  const out: Kept[] = []
  let at = 0
  while (at < data.length) {
    const seq = data.readDoubleLE(at)
    const when = data.readDoubleLE(at + 8)
    const idLength = data.readUInt16LE(at + 16)
    const deviceId = data.toString('utf8', at + 18, at + 18 + idLength)
    at += 18 + idLength
    const bodyLength = data.readUInt32LE(at)
    const body = Buffer.from(data.subarray(at + 4, at + 4 + bodyLength))
    at += 4 + bodyLength
    if (at > data.length) throw new GatewayError('HT_ERR_STORE', 'a truncated row in the downlink store')
    out.push({ seq, deviceId, body, bytes: bodyLength, at: when, gone: false })
  }
  return out
}

function openFile(file: string, logger: Logger): SqlitePersistence {
  const db = new Database(file)
  try {
    return new SqlitePersistence(db, logger)
  } catch (err) {
    db.close()
    throw err
  }
}

/** What a store file holds, read without changing it: kept messages per device, remembered devices. */
export interface StoreContents {
  readonly kept: ReadonlyMap<string, number>
  readonly remembered: ReadonlySet<string>
}

/** Reads a store file written by {@link openPersistence} (throws when it cannot: corrupt, another version). */
export function readStore(file: string): StoreContents {
  const db = new Database(file, { fileMustExist: true })
  try {
    const version = db.pragma('user_version', { simple: true }) as number
    if (version !== SCHEMA)
      throw new GatewayError('HT_ERR_STORE', `not a downlink store of this version (${version})`)
    const kept = new Map<string, number>()
    for (const row of db.prepare('SELECT data FROM batches').all() as { data: Buffer }[]) {
      for (const k of decode(row.data)) kept.set(k.deviceId, (kept.get(k.deviceId) ?? 0) + 1)
    }
    const devices = db.prepare('SELECT device FROM devices').all() as { device: string }[]
    return { kept, remembered: new Set(devices.map((d) => d.device)) }
  } finally {
    db.close()
  }
}

/**
 * The store's persistence for `dataDir`: memory only for 'off'. A file that cannot be read (corrupt,
 * not SQLite, another version) is moved aside (`<file>.bad-<ms>`) and reported with its path, and
 * the gateway starts with an empty store; if even that fails, with a store in memory.
 */
export function openPersistence(dataDir: string, logger: Logger): Persistence {
  if (dataDir === 'off') return new MemoryPersistence()
  const file = resolve(join(dataDir, STORE_FILE))
  try {
    mkdirSync(dataDir, { recursive: true })
    return openFile(file, logger)
  } catch (err) {
    const error = (err as Error).message
    const aside = `${file}.bad-${Date.now()}`
    try {
      renameSync(file, aside)
      for (const suffix of ['-wal', '-shm']) {
        try {
          renameSync(file + suffix, aside + suffix)
        } catch {
          // not there: nothing to move
        }
      }
      logger.error('downlink store unreadable: moved aside, starting with an empty store', {
        path: file,
        movedTo: aside,
        error,
      })
      return openFile(file, logger)
    } catch (again) {
      logger.error('downlink store cannot be opened: keeping messages in memory only', {
        path: file,
        error,
        alsoFailed: (again as Error).message,
      })
      return new MemoryPersistence()
    }
  }
}
