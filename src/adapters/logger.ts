import winston from 'winston'
import type { Logger } from '../log.js'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent'
export type LogFormat = 'pretty' | 'json'

/**
 * The process logger: winston to stdout, one line per event. `pretty` is for people
 * (`2026-11-22T10:00:00.000Z info  device online deviceId=sensor-1`), `json` for log shippers.
 */
const MESSAGE = Symbol.for('message')

export function createLogger(level: LogLevel, format: LogFormat): Logger {
  const pretty = winston.format.printf((info) => {
    const { timestamp, level: lvl, message, ...meta } = info
    let line = `${String(timestamp)} ${lvl.padEnd(5)} ${escapeUnseen(String(message))}`
    for (const [k, v] of Object.entries(meta)) {
      if (v === undefined) continue
      const text = typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v)
      line += ` ${k}=${escapeUnseen(text)}`
    }
    return line
  })
  // JSON lines escape C0 controls already; the rest of what does not show is escaped here.
  const escaped = winston.format((info) => {
    // triple-beam's MESSAGE: the finished line, as winston documents for custom formats.
    const line = info[MESSAGE]
    if (typeof line === 'string') info[MESSAGE] = escapeUnseen(line)
    return info
  })
  const root = winston.createLogger({
    level: level === 'silent' ? 'error' : level,
    silent: level === 'silent',
    format: winston.format.combine(
      winston.format.timestamp(),
      ...(format === 'json' ? [winston.format.json(), escaped()] : [pretty]),
    ),
    transports: [new winston.transports.Console()],
  })
  return guarded(root, level)
}

/**
 * Every character of a log line that does not show as itself — controls (C0, DEL, C1), invisible
 * and direction-changing format characters, line separators — as `\\uXXXX`: values that came from
 * outside (ids, topics, addresses, reasons) cannot forge or hide lines, or move the cursor.
 */
export function escapeUnseen(text: string): string {
  return UNSEEN.test(text)
    ? text.replace(UNSEEN_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    : text
}

const UNSEEN_CLASS =
  '[\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]'
const UNSEEN = new RegExp(UNSEEN_CLASS)
const UNSEEN_ALL = new RegExp(UNSEEN_CLASS, 'g')

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
