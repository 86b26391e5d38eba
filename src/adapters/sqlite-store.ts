/**
 * The downlink store on disk: SQLite (better-sqlite3, synchronous and embedded) in the gateway's
 * `dataDir`. Everything written in one turn of the event loop is one transaction, committed on the
 * next turn; a message is acknowledged to the broker only after its commit. WAL with
 * `synchronous=NORMAL`: a commit survives the gateway being killed (SIGKILL, a crash), though not
 * the machine losing power before the OS writes it out.
 */
import { mkdirSync, renameSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import type { HeldDevice, Kept, Persistence } from '../delivery/store.js'
import { MemoryPersistence } from '../delivery/store.js'
import type { Logger } from '../log.js'

export const STORE_FILE = 'downlinks.sqlite'

interface Row {
  seq: number
  device: string
  at: number
  body: Buffer
}

class SqlitePersistence implements Persistence {
  readonly durable = true
  private readonly insert: Database.Statement
  private readonly del: Database.Statement
  private readonly upsert: Database.Statement
  private open = false
  private waiters: (() => void)[] = []
  private readonly loaded: { kept: Kept[]; devices: HeldDevice[] }

  /** Opens (creating) the file and reads it whole: a corrupt file throws here. */
  constructor(
    private readonly db: Database.Database,
    private readonly logger: Logger,
  ) {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec(`
      CREATE TABLE IF NOT EXISTS downlinks (seq INTEGER PRIMARY KEY, device TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, username TEXT NOT NULL);
    `)
    this.insert = db.prepare('INSERT INTO downlinks (seq, device, at, body) VALUES (?, ?, ?, ?)')
    this.del = db.prepare('DELETE FROM downlinks WHERE seq = ?')
    this.upsert = db.prepare('INSERT OR REPLACE INTO devices (device, username) VALUES (?, ?)')
    const rows = db.prepare('SELECT seq, device, at, body FROM downlinks ORDER BY seq').all() as Row[]
    const devices = db.prepare('SELECT device, username FROM devices').all() as {
      device: string
      username: string
    }[]
    this.loaded = {
      kept: rows.map((r) => ({ seq: r.seq, deviceId: r.device, at: r.at, body: r.body, gone: false })),
      devices: devices.map((d) => ({ deviceId: d.device, username: d.username })),
    }
  }

  load(): { kept: Kept[]; devices: HeldDevice[] } {
    return this.loaded
  }

  add(kept: Kept): void {
    this.begin()
    this.insert.run(kept.seq, kept.deviceId, kept.at, kept.body)
  }

  remove(seq: number): void {
    this.begin()
    this.del.run(seq)
  }

  remember(device: HeldDevice): void {
    this.begin()
    this.upsert.run(device.deviceId, device.username)
  }

  whenWritten(done: () => void): void {
    if (this.open) this.waiters.push(done)
    else done()
  }

  close(): void {
    if (this.open) this.commit()
    this.db.close()
  }

  private begin(): void {
    if (this.open) return
    this.db.exec('BEGIN')
    this.open = true
    setImmediate(this.commit)
  }

  private readonly commit = (): void => {
    if (!this.open) return
    this.open = false
    try {
      this.db.exec('COMMIT')
    } catch (err) {
      // The disk refused (full, gone): what was kept stays in memory, and is delivered from there.
      this.logger.error('downlink store: write failed, kept in memory only', {
        error: (err as Error).message,
      })
    }
    const waiters = this.waiters
    this.waiters = []
    for (const done of waiters) done()
  }
}

/**
 * The store's persistence for `dataDir`: memory only for 'off'. A file that cannot be read (corrupt,
 * not SQLite) is moved aside (`<file>.bad-<ms>`) and reported with its path, and the gateway starts
 * with an empty store; if even that fails, with a store in memory.
 */
export function openPersistence(dataDir: string, logger: Logger): Persistence {
  if (dataDir === 'off') return new MemoryPersistence()
  const file = resolve(join(dataDir, STORE_FILE))
  try {
    mkdirSync(dataDir, { recursive: true })
    return new SqlitePersistence(new Database(file), logger)
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
      return new SqlitePersistence(new Database(file), logger)
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
