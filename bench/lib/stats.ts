/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return Number.NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

/** Key by key, the median of the records' values (the keys of the first record), rounded. */
export function medianByKey(records: readonly Record<string, number>[]): Record<string, number> {
  const first = records[0] ?? {}
  return Object.fromEntries(Object.keys(first).map((k) => [k, round(median(records.map((r) => r[k]!)), 3)]))
}

export function sum(values: readonly number[]): number {
  let n = 0
  for (const v of values) n += v
  return n
}

/** Rounds to `digits` significant figures (results stay readable in the JSON). */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value) || value === 0) return value
  const scale = 10 ** (digits - Math.ceil(Math.log10(Math.abs(value))))
  return Math.round(value * scale) / scale
}

/** Splits `n` items over `parts` as contiguous ranges. */
export function split(n: number, parts: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = []
  let first = 0
  for (let p = 0; p < parts; p++) {
    const count = Math.floor(n / parts) + (p < n % parts ? 1 : 0)
    out.push({ first, count })
    first += count
  }
  return out.filter((r) => r.count > 0)
}
