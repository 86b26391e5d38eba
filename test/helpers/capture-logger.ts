import type { Logger } from '../../src/log.js'

/** A logger that keeps every line (message and fields, as text) at every level, debug included. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const make = (base: Record<string, unknown>): Logger => {
    const log = (level: string) => (message: string, meta?: Record<string, unknown>) => {
      lines.push(`${level} ${message} ${JSON.stringify({ ...base, ...meta })}`)
    }
    return {
      error: log('error'),
      warn: log('warn'),
      info: log('info'),
      debug: log('debug'),
      child: (meta) => make({ ...base, ...meta }),
      isEnabled: () => true,
    }
  }
  return { logger: make({}), lines }
}
