import { openPersistence } from '../adapters/sqlite-store.js'
import { checkStoreLayout } from '../adapters/store-layout.js'
import { DeviceRegistry } from '../auth/registry.js'
import { Downlinks } from '../bridge/downlinks.js'
import type { GatewayConfig } from '../config/settings.js'
import { DownlinkStore } from '../delivery/store.js'
import { type Logger, LogThrottle } from '../log.js'
import type { GatewayStats } from '../stats.js'

/** How often kept messages past `offlineQueueTtl` are dropped. */
const EXPIRY_INTERVAL_MS = 60_000

/** The downlink store of a running gateway, and what keeps it tidy. */
export interface Delivery {
  readonly downlinks: Downlinks
  /** Fills the store's gauges into `stats`. */
  gauge(stats: GatewayStats): void
  close(): void
}

/**
 * Before the store of a gateway of `workers` processes is opened (by the primary for its workers):
 * warns of what `dataDir`'s stores keep that this layout will not deliver (adapters/store-layout.ts).
 */
export function checkDataDir(config: GatewayConfig, workers: number, logger: Logger): void {
  if (config.offlineQueueMessages === 0 || config.dataDir === 'off') return
  checkStoreLayout(
    config.dataDir,
    workers,
    () => new DeviceRegistry(config.devices).ids(),
    logger.child({ component: 'store' }),
  )
}

/**
 * Opens the downlink store (store-and-forward, PROTOCOL decision 33) in `dataDir`, or nothing when
 * `offlineQueueMessages` is 0.
 */
export function openDelivery(
  config: GatewayConfig,
  logger: Logger,
  stats: GatewayStats,
): Delivery | undefined {
  if (config.offlineQueueMessages === 0) return undefined
  const log = logger.child({ component: 'store' })
  const throttle = new LogThrottle(log)
  let downlinks: Downlinks | undefined
  const store = new DownlinkStore(
    openPersistence(config.dataDir, log),
    {
      messages: config.offlineQueueMessages,
      bytes: config.offlineQueueBytes,
      totalBytes: config.offlineStoreBytes,
      ttlMs: config.offlineQueueTtl * 1000,
    },
    (kept, why) => downlinks?.evicted(kept, why, throttle),
  )
  downlinks = new Downlinks(store, config.downlinkDelivery, stats)
  const timer = setInterval(() => store.expire(Date.now()), EXPIRY_INTERVAL_MS)
  timer.unref()
  return {
    downlinks,
    gauge(s) {
      s.keptNow = store.size
      s.keptBytes = store.totalBytes
    },
    close() {
      clearInterval(timer)
      store.close()
    },
  }
}
