import * as hdr from 'hdr-histogram-js'

/**
 * Latency histograms (HdrHistogram, µs, 3 significant digits, 1 µs … 60 s). They travel between
 * processes as HdrHistogram's compressed base64 form.
 */
export type Histogram = hdr.Histogram

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  })
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h)
}

export function decodeHistogram(text: string): Histogram {
  return hdr.decodeFromCompressedBase64(text)
}

/** p50 / p99 / max in milliseconds, and the sample count. */
export interface LatencySummary {
  count: number
  p50_ms: number
  p99_ms: number
  p999_ms: number
  max_ms: number
}

export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000
  return {
    count: h.totalCount,
    p50_ms: ms(h.getValueAtPercentile(50)),
    p99_ms: ms(h.getValueAtPercentile(99)),
    p999_ms: ms(h.getValueAtPercentile(99.9)),
    max_ms: ms(h.maxValue),
  }
}
