import type { ConfigLayer } from '../config/resolve.js'

/** The environment variable that makes a process one of a primary's workers (its settings over the rest). */
export const WORKER_ENV = 'HTGW_WORKER_BRIEF'

/** What the primary tells each worker, as JSON in {@link WORKER_ENV}. */
export interface WorkerBrief {
  readonly index: number
  readonly count: number
  /** Settings over every other source: its gateway id, broker link, data directory; no admin listener. */
  readonly settings: Record<string, unknown>
}

/** This process's brief when it is a worker, else undefined. */
export function workerBrief(env: NodeJS.ProcessEnv): WorkerBrief | undefined {
  const text = env[WORKER_ENV]
  return text === undefined ? undefined : (JSON.parse(text) as WorkerBrief)
}

/** The brief's settings as the last configuration layer (they win over flags). */
export function workerLayer(brief: WorkerBrief): ConfigLayer {
  return { source: `worker ${brief.index + 1} (set by the primary)`, values: brief.settings }
}

/** Messages a worker sends its primary. */
export type WorkerMessage = { readonly type: 'hypertcp:ready' }

/** Tells the primary this worker serves (its listeners are bound). */
export function announceReady(): void {
  const message: WorkerMessage = { type: 'hypertcp:ready' }
  process.send?.(message)
}
