import { performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'

/**
 * The gateway process's V8 heap policy. By default V8 lets the old generation grow to several
 * times its live size before a full GC; under connection churn every connection's objects reach
 * the old generation, and RSS saws by ±15 % over 1M connect/disconnect cycles. With a full GC
 * once the old generation has grown 10 % ({@link STEADY}) it stays within ±2 %, for no measurable
 * CPU per cycle.
 *
 * That policy costs while the heap *grows*: a login ramp of thousands of devices (a restart, a
 * fleet coming online) pays about 40 % more gateway CPU per login in full GCs. So while open
 * connections rise faster than {@link RAMP_PER_S} a second, V8's own policy applies
 * ({@link RAMPING}); once they have settled for {@link QUIET_TICKS} ticks the 10 % policy is back.
 * V8 reads the flag when it sizes the heap after a full GC, so the limit it chose during the ramp
 * holds until the next one — its memory reducer's, once allocation slows, or the limit's own. No
 * GC is forced: a full GC of 20,000 devices' heap is a pause of about 90 ms, and V8's are
 * incremental.
 *
 * Only the command line applies it (`cli.ts`): a library user's process is theirs. A
 * `--heap-growing-percent` given on the command line turns it off (`=0` is V8's own policy).
 */
export const STEADY = '--heap-growing-percent=10'
export const RAMPING = '--heap-growing-percent=0'
/** Open connections gained per second, over one tick, that count as a login ramp. */
export const RAMP_PER_S = 500
/** Ticks without a ramp before the steady policy is back. */
export const QUIET_TICKS = 2
/** How often the connection count is looked at. */
export const TICK_MS = 1_000

/** Whether the operator set V8's heap growth on the command line (then the policy stays off). */
export function operatorChoseHeapGrowth(execArgv: readonly string[]): boolean {
  return execArgv.some(
    (a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'),
  )
}

/** What the policy acts on: V8's flags (a stub in the unit tests). */
export interface HeapControls {
  setFlags(flags: string): void
  log(message: string): void
}

/** The decision, fed a connection count per tick; holds no timer of its own. */
export class HeapPolicy {
  private last: number
  private quiet = 0
  private ramping = false

  constructor(
    private readonly controls: HeapControls,
    open: number,
  ) {
    this.last = open
    controls.setFlags(STEADY)
  }

  get isRamping(): boolean {
    return this.ramping
  }

  /** `open` connections now, `elapsedMs` since the previous tick. */
  tick(open: number, elapsedMs: number): void {
    const perSecond = ((open - this.last) * 1000) / Math.max(elapsedMs, 1)
    this.last = open
    if (perSecond >= RAMP_PER_S) {
      this.quiet = 0
      if (!this.ramping) {
        this.ramping = true
        this.controls.setFlags(RAMPING)
        this.controls.log(
          `heap: login ramp (${Math.round(perSecond)} connections/s, ${open} open); V8's own heap growth until it settles`,
        )
      }
      return
    }
    if (!this.ramping || ++this.quiet < QUIET_TICKS) return
    this.ramping = false
    this.quiet = 0
    this.controls.setFlags(STEADY)
    this.controls.log(`heap: login ramp over (${open} open); a full GC per 10 % heap growth again`)
  }
}

/**
 * Starts the policy for the gateway process, looking at `open()` every {@link TICK_MS}, for the
 * life of the process (the timer does not keep it alive); nothing when the operator chose the
 * heap growth.
 */
export function startHeapPolicy(
  execArgv: readonly string[],
  open: () => number,
  log: (message: string) => void,
): void {
  if (operatorChoseHeapGrowth(execArgv)) return
  const policy = new HeapPolicy({ setFlags: setFlagsFromString, log }, open())
  let then = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    policy.tick(open(), now - then)
    then = now
  }, TICK_MS)
  timer.unref()
}
