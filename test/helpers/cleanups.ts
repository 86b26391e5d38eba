/**
 * What a test started, stopped after it, last started first: `const cleanups = useCleanups()` in a
 * describe, then `cleanups.push(() => thing.stop())` in its tests.
 */
export function useCleanups(): { push(cleanup: () => unknown): void } {
  const cleanups: Array<() => unknown> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return { push: (cleanup) => void cleanups.push(cleanup) }
}
