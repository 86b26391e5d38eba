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
  /** Whether a call at `level` would log (to skip building what it would log). */
  isEnabled(level: LogLevelName): boolean
}

export type LogLevelName = 'error' | 'warn' | 'info' | 'debug'

/** A logger that drops everything. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger
  },
  isEnabled() {
    return false
  },
}

/**
 * Logs a recurring event at most once per `intervalMs` per key, with the number of occurrences
 * it held back: a flood of bad connections becomes a few log lines, not a log flood.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, message: string, meta: Record<string, unknown> = {}): void {
    const now = Date.now()
    const entry = this.last.get(key)
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++
      return
    }
    const suppressed = entry?.suppressed ?? 0
    this.last.set(key, { at: now, suppressed: 0 })
    this.logger.warn(message, suppressed > 0 ? { ...meta, suppressedSinceLast: suppressed } : meta)
  }
}
