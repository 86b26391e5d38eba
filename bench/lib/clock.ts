/**
 * The one clock every benchmark process stamps and reads: microseconds of CLOCK_MONOTONIC.
 *
 * Uplink latency is "send time in a generator process" minus "receive time in the subscriber
 * process", so both must read the same clock. On Linux `process.hrtime` is CLOCK_MONOTONIC, which
 * is system-wide (since boot), not per process, and never steps. `performance.timeOrigin + now()`
 * is not usable: each process's timeOrigin is a wall-clock reading taken at its start, and two
 * processes disagree by 1–2 ms (measured here), as much as the latency target itself.
 *
 * `performance.now()` is itself hrtime-based (same clock, shifted by this process's origin), and
 * cheaper than `hrtime.bigint()` (no BigInt per call), so the offset between the two is taken
 * once and `nowUs()` is a float add.
 */
function calibrate(): number {
  const offsets: number[] = []
  for (let i = 0; i < 7; i++) {
    const perf = performance.now() * 1000
    const mono = Number(process.hrtime.bigint() / 1000n)
    offsets.push(mono - perf)
  }
  offsets.sort((a, b) => a - b)
  return offsets[3]!
}

const offsetUs = calibrate()

/** Microseconds of CLOCK_MONOTONIC, comparable across the processes of one machine. */
export function nowUs(): number {
  return performance.now() * 1000 + offsetUs
}

/** Resolves after `ms` (timer not holding the process open). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
