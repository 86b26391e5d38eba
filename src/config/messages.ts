import { ConfigError } from '../errors.js'

/** `<key>: expected <what>, got <the value>`: every configuration message reads this way. */
export function bad(key: string, expected: string, got: unknown): ConfigError {
  return new ConfigError(key, `expected ${expected}, got ${describe(got)}`)
}

/** A value as it is shown in a message: JSON, cut at 60 characters. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A whole number from `min` to `max`. */
export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
}

/** Refuses a key of an entry that is not one of `fields`: `<at>.<key>: unknown <what> setting (did you mean …?)`. */
export function checkFields(at: string, entry: Record<string, unknown>, fields: object, what: string): void {
  const known = Object.keys(fields)
  for (const k of Object.keys(entry)) {
    if (!known.includes(k)) throw new ConfigError(`${at}.${k}`, `unknown ${what} setting${suggest(k, known)}`)
  }
}

/** ` (did you mean "port"?)` for a near miss, else ''. */
export function suggest(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase()
  let best: string | undefined
  let bestScore = 3
  for (const k of known) {
    const d = distance(lower, k.toLowerCase())
    if (d < bestScore) {
      bestScore = d
      best = k
    }
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]!
}
