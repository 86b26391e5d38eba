/**
 * The logging the gateway needs, injected everywhere (winston satisfies it; see adapters/logger.ts).
 * Scoped with `child({ deviceId })`. Nothing logs per frame above `debug`.
 */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void
  warn(message: string, meta?: Record<string, unknown>): void
  info(message: string, meta?: Record<string, unknown>): void
  debug(message: string, meta?: Record<string, unknown>): void
  child(meta: Record<string, unknown>): Logger
  isDebugEnabled(): boolean
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger
  },
  isDebugEnabled() {
    return false
  },
}
