import winston from 'winston'
import type { Logger } from '../log.js'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent'
export type LogFormat = 'pretty' | 'json'

/**
 * The process logger: winston to stdout, one line per event. `pretty` is for people
 * (`2026-11-22T10:00:00.000Z info  device online deviceId=sensor-1`), `json` for log shippers.
 */
export function createLogger(level: LogLevel, format: LogFormat): Logger {
  const pretty = winston.format.printf((info) => {
    const { timestamp, level: lvl, message, ...meta } = info
    let line = `${String(timestamp)} ${lvl.padEnd(5)} ${String(message)}`
    for (const [k, v] of Object.entries(meta)) {
      if (v === undefined) continue
      const text = typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v)
      line += ` ${k}=${text}`
    }
    return line
  })
  const root = winston.createLogger({
    level: level === 'silent' ? 'error' : level,
    silent: level === 'silent',
    format: winston.format.combine(
      winston.format.timestamp(),
      format === 'json' ? winston.format.json() : pretty,
    ),
    transports: [new winston.transports.Console()],
  })
  return guarded(root, level)
}

const RANK: Record<LogLevel, number> = { silent: -1, error: 0, warn: 1, info: 2, debug: 3 }

/**
 * winston filters by level in its transports, after building and formatting the entry: a
 * per-login info line costs its timestamp and formatting even at `--log-level warn`. This
 * checks the level first, so a disabled level costs a comparison.
 */
function guarded(w: winston.Logger, level: LogLevel): Logger {
  const max = RANK[level]
  const at = (lvl: Exclude<LogLevel, 'silent'>) =>
    RANK[lvl] <= max
      ? (message: string, meta?: Record<string, unknown>) => w.log(lvl, message, meta)
      : () => {}
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (meta) => guarded(w.child(meta), level),
    isEnabled: (lvl) => RANK[lvl] <= max,
  }
}
