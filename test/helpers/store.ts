import { openPersistence } from '../../src/adapters/sqlite-store.js'
import { DownlinkStore } from '../../src/delivery/store.js'
import { silentLogger } from '../../src/log.js'

const LIMITS = { messages: 100, bytes: 65_536, totalBytes: 1 << 20, ttlMs: 60_000 }

/**
 * Writes a downlink store in `dir` with the gateway's own store code, as a gateway that kept
 * `kept[id]` messages for each device and served the `remembered` ones would have left it.
 */
export async function writeStore(
  dir: string,
  kept: Record<string, number>,
  remembered: string[] = [],
): Promise<void> {
  const store = new DownlinkStore(openPersistence(dir, silentLogger), LIMITS, () => {})
  store.load()
  for (const [id, n] of Object.entries(kept)) {
    for (let i = 0; i < n; i++) store.keep(id, `{"n":${i}}`, Date.now())
  }
  for (const id of remembered) store.remember({ deviceId: id, username: id })
  await new Promise<void>((resolve) => store.whenWritten(resolve))
  store.close()
}
