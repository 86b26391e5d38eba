/**
 * The V8 flag the gateway process sets for itself, unless the operator gave their own: a full GC
 * once the old generation has grown 10 % (V8's default lets it grow to several times its live
 * size). Under connection churn each connection's objects reach the old generation; with V8's
 * default RSS saws by ±15 % over 1M connect/disconnect cycles, with this it stays within ±2 %,
 * for no measurable CPU per cycle. The cost is in login ramps, while the heap grows: about 40 %
 * more gateway CPU per login (20 % costs a little less, but in its soak RSS over 10 minutes of
 * idle devices went outside ±2 %; README "Guarantees and limits"). `node --heap-growing-percent=0 dist/cli.js` restores V8's own
 * policy. Only the command line sets it: a library user's process is theirs.
 */
export function heapPolicy(execArgv: readonly string[]): string | undefined {
  return execArgv.some(
    (a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'),
  )
    ? undefined
    : '--heap-growing-percent=10'
}
