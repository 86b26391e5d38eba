import type { Worker } from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import { GatewayMetrics, type MetricsSource } from '../adapters/admin/metrics.js'
import {
  type AdminBackend,
  type DeviceQuery,
  type DeviceView,
  type MetricsText,
  selectDevices,
} from '../adapters/admin/server.js'
import type { DialOutView } from '../adapters/dial-out.js'
import { GatewayError } from '../errors.js'

/**
 * The admin listener of a primary (`workers`, PROTOCOL decision 37): one view of every worker. The
 * primary asks each worker over the cluster's IPC channel, a worker answers from its own gateway;
 * /metrics is prom-client's cluster aggregation of the workers' registries.
 */

type Op = 'devices' | 'device' | 'dialOut' | 'kick' | 'send' | 'counters' | 'missing'

interface Request {
  readonly type: 'hypertcp:admin'
  readonly id: number
  readonly op: Op
  readonly args: readonly string[]
}

interface Reply {
  readonly type: 'hypertcp:admin-reply'
  readonly id: number
  readonly value?: unknown
  readonly error?: string
}

/** How long the primary waits for a worker's answer before it answers without it. */
const ASK_TIMEOUT_MS = 3000

/** Worker side: answers the primary's admin requests from this worker's gateway, metrics included. */
export function serveAdmin(backend: AdminBackend & MetricsSource): void {
  new AggregatorRegistry() // makes this worker answer the primary's metrics requests…
  AggregatorRegistry.setRegistries(new GatewayMetrics(backend).registry) // …with the gateway's metrics
  process.on('message', (message: Request) => {
    if (message?.type !== 'hypertcp:admin') return
    const { id, op, args } = message
    answer(backend, op, args).then(
      (value) => process.send?.({ type: 'hypertcp:admin-reply', id, value } satisfies Reply),
      (err: unknown) =>
        process.send?.({ type: 'hypertcp:admin-reply', id, error: String(err) } satisfies Reply),
    )
  })
}

async function answer(backend: AdminBackend, op: Op, args: readonly string[]): Promise<unknown> {
  switch (op) {
    case 'devices':
      return backend.devices({ prefix: args[0]!, after: args[1] || null, limit: Number(args[2]) })
    case 'device':
      return backend.device(args[0]!)
    case 'dialOut':
      return backend.dialOut()
    case 'kick':
      return backend.kick(args[0]!)
    case 'send':
      return backend.send(args[0]!, args[1]!)
    case 'counters':
      return backend.counters()
    case 'missing':
      return backend.missing()
  }
}

/** Primary side: the admin backend over the workers that serve (`workers()`, by number; undefined: not ready). */
export class WorkersAdmin implements AdminBackend {
  private nextId = 0
  private readonly waiting = new Map<number, (reply: Reply) => void>()
  readonly metrics: MetricsText

  constructor(
    readonly gatewayId: string,
    readonly maxDownlinkSize: number,
    private readonly workers: () => ReadonlyMap<number, Worker | undefined>,
  ) {
    const aggregator = new AggregatorRegistry()
    this.metrics = { text: () => aggregator.clusterMetrics(), contentType: aggregator.contentType }
  }

  /** Takes a worker's messages: the replies to the primary's requests. */
  listen(worker: Worker): void {
    worker.on('message', (message: Reply) => {
      if (message?.type !== 'hypertcp:admin-reply') return
      this.waiting.get(message.id)?.(message)
    })
  }

  /** Each worker's first `limit`, merged: the first `limit` of all (ids are never empty: '' is no `after`). */
  async devices(query: DeviceQuery): Promise<DeviceView[]> {
    const args = [query.prefix, query.after ?? '', String(query.limit)]
    const all = (await this.ask<DeviceView[]>('devices', args)).flatMap((r) => r.value ?? [])
    return selectDevices(all, (d) => d.id, query)
  }

  async device(id: string): Promise<DeviceView | undefined> {
    return (await this.ask<DeviceView | undefined>('device', [id])).find((r) => r.value != null)?.value
  }

  async dialOut(): Promise<DialOutView[]> {
    return (await this.ask<DialOutView[]>('dialOut')).flatMap((r) => r.value ?? [])
  }

  async kick(id: string): Promise<boolean> {
    return (await this.ask<boolean>('kick', [id])).some((r) => r.value === true)
  }

  /** Any worker publishes it: the message reaches the device through the broker, wherever it is. */
  async send(id: string, payloadJson: string): Promise<void> {
    const [first] = await this.ask<void>('send', [id, payloadJson], 1)
    if (first === undefined) throw new GatewayError('HT_ERR_WORKER', 'no worker is ready')
    if (first.error !== undefined)
      throw new GatewayError('HT_ERR_WORKER', `worker ${first.worker}: ${first.error}`)
  }

  /** Every worker's counters, summed (numbers, and counts by key), and each worker's own. */
  async counters(): Promise<Record<string, unknown>> {
    const replies = await this.ask<Record<string, unknown>>('counters')
    const sum: Record<string, unknown> = {}
    for (const { value } of replies) if (value !== undefined) addInto(sum, value)
    return { ...sum, workers: replies.map((r) => ({ worker: r.worker, ...(r.value ?? { error: r.error }) })) }
  }

  async missing(): Promise<string[]> {
    const missing: string[] = []
    for (const [n, w] of this.workers()) if (w === undefined) missing.push(`worker ${n} is not ready`)
    for (const r of await this.ask<string[]>('missing')) {
      if (r.error !== undefined) missing.push(`worker ${r.worker}: ${r.error}`)
      for (const m of r.value ?? []) missing.push(`worker ${r.worker}: ${m}`)
    }
    return missing
  }

  /** Asks up to `limit` workers; a worker that does not answer in time answers an error. */
  private ask<T>(
    op: Op,
    args: readonly string[] = [],
    limit = Number.POSITIVE_INFINITY,
  ): Promise<{ worker: number; value?: T; error?: string }[]> {
    const asked: Promise<{ worker: number; value?: T; error?: string }>[] = []
    for (const [n, worker] of this.workers()) {
      if (worker === undefined || !worker.isConnected() || asked.length >= limit) continue
      const id = ++this.nextId
      asked.push(
        new Promise((resolve) => {
          const timer = setTimeout(
            () => settle({ type: 'hypertcp:admin-reply', id, error: 'no answer in time' }),
            ASK_TIMEOUT_MS,
          )
          const settle = (reply: Reply) => {
            clearTimeout(timer)
            this.waiting.delete(id)
            resolve({
              worker: n,
              ...(reply.error !== undefined ? { error: reply.error } : { value: reply.value as T }),
            })
          }
          this.waiting.set(id, settle)
          worker.send({ type: 'hypertcp:admin', id, op, args } satisfies Request)
        }),
      )
    }
    return Promise.all(asked)
  }
}

/** Adds a worker's counters into the sum: numbers add, objects of numbers add by key. */
function addInto(sum: Record<string, unknown>, value: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'number') sum[k] = ((sum[k] as number | undefined) ?? 0) + v
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      sum[k] ??= {}
      const into = sum[k] as Record<string, unknown>
      for (const [kk, vv] of Object.entries(v))
        if (typeof vv === 'number') into[kk] = ((into[kk] as number | undefined) ?? 0) + vv
    }
  }
}
