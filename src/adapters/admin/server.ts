import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../../log.js'
import { isValidTopicLevel } from '../../protocol/ids.js'
import type { DialOutView } from '../dial-out.js'
import { formatAddress, listenOn } from '../listen.js'

/** A connected device as the admin API shows it. */
export interface DeviceView {
  readonly id: string
  readonly ip: string
  readonly port: number
  /** ISO 8601. */
  readonly connectedAt: string
  readonly username: string
  readonly tls: boolean
  /** Its device protocol (`hypertcp`, `blynk`), and what it said about itself, if it did. */
  readonly dialect: string
  readonly info?: Readonly<Record<string, string>>
  /** Messages the broker accepted from it, and frames delivered to it, on this connection. */
  readonly up: number
  readonly down: number
}

/** Which devices a list asks for: ids starting with `prefix`, after `after` (null: from the first). */
export interface DeviceQuery {
  readonly prefix: string
  readonly after: string | null
  readonly limit: number
}

/** The first `query.limit` of `items` (by `idOf`) in id order that the query selects. */
export function selectDevices<T>(items: Iterable<T>, idOf: (item: T) => string, query: DeviceQuery): T[] {
  const picked: T[] = []
  for (const item of items) {
    const id = idOf(item)
    if (id.startsWith(query.prefix) && (query.after === null || id > query.after)) picked.push(item)
  }
  picked.sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0))
  if (picked.length > query.limit) picked.length = query.limit
  return picked
}

/** A value now, or (a primary asking its workers) once they answered. */
type Later<T> = T | Promise<T>

/** What the admin listener may see and do in the gateway (or, with `workers`, in all of them). */
export interface AdminBackend {
  readonly gatewayId: string
  readonly maxDownlinkSize: number
  /** The devices connected to this instance that `query` selects ({@link selectDevices}). */
  devices(query: DeviceQuery): Later<DeviceView[]>
  /** One device connected to this instance. */
  device(id: string): Later<DeviceView | undefined>
  /** The devices this instance dials (`dialOut`), and where each is. */
  dialOut(): Later<DialOutView[]>
  /** Closes a device's connection (reason `kicked`); false if it is not connected here. */
  kick(id: string): Later<boolean>
  /** Publishes a message for the device on its down topic, as from `server` (wherever it is connected). */
  send(id: string, payloadJson: string): Promise<void>
  /** The counters, as JSON. */
  counters(): Later<Record<string, unknown>>
  /** What keeps the gateway from serving: listeners not bound, broker connections down. */
  missing(): Later<string[]>
}

/** The Prometheus text of /metrics: one gateway's ({@link GatewayMetrics}), or its workers' together. */
export interface MetricsText {
  text(): Promise<string>
  readonly contentType: string
}

export interface AdminOptions {
  readonly host: string
  readonly port: number
  /** Required as `Authorization: Bearer <token>` by /api and /metrics; null: none. */
  readonly token: string | null
  readonly backend: AdminBackend
  /** What /metrics shows: the gateway's own metrics unless given (a primary: its workers'). */
  readonly metrics: MetricsText
  readonly logger: Logger
}

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version
const DASHBOARD = new URL('../../../assets/dashboard.html', import.meta.url)
const PAGE_LIMIT = 1000
const DEFAULT_PAGE = 100

/** A request's failure, answered as `{"error": message}` with its status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * The admin listener (node:http): Prometheus metrics, health checks for an orchestrator, a small
 * REST API to find, kick and message devices, and the dashboard page. `/healthz` and `/readyz`
 * never ask for the token; `/metrics` and `/api/*` do when one is set (compared in constant time).
 */
export class AdminServer {
  private readonly server: Server
  private readonly metrics: MetricsText
  private readonly tokenDigest: Buffer | undefined
  private readonly started = Date.now()
  private dashboard: Buffer | undefined

  private constructor(private readonly options: AdminOptions) {
    this.metrics = options.metrics
    this.tokenDigest = options.token === null ? undefined : digest(options.token)
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500
        if (status === 500) options.logger.error('admin request failed', { url: req.url, error: String(err) })
        send(res, status, { error: err instanceof Error ? err.message : String(err) })
      })
    })
  }

  static async start(options: AdminOptions): Promise<AdminServer> {
    const admin = new AdminServer(options)
    await listenOn(admin.server, options.host, options.port, 'admin listener')
    const a = admin.address
    options.logger.info(
      `admin listener (metrics, health, API, dashboard) on http://${formatAddress(a.address, a.port)}`,
    )
    return admin
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin')
    const path = url.pathname
    const method = req.method ?? 'GET'
    if (path === '/healthz') return send(res, 200, { status: 'ok' })
    if (path === '/readyz') {
      const missing = await this.options.backend.missing()
      return send(
        res,
        missing.length === 0 ? 200 : 503,
        missing.length === 0 ? { status: 'ready' } : { status: 'not ready', missing },
      )
    }
    if (path === '/' && method === 'GET') {
      this.dashboard ??= readFileSync(DASHBOARD)
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        .end(this.dashboard)
      return
    }
    if (path !== '/metrics' && !path.startsWith('/api/'))
      throw new HttpError(404, `no such resource: ${path}`)
    this.authorize(req)
    if (path === '/metrics') {
      allow(method, 'GET')
      res.writeHead(200, { 'content-type': this.metrics.contentType }).end(await this.metrics.text())
      return
    }
    return this.api(method, path, url, req, res)
  }

  private authorize(req: IncomingMessage): void {
    if (this.tokenDigest === undefined) return
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    if (m === null || !timingSafeEqual(digest(m[1]!), this.tokenDigest)) {
      throw new HttpError(401, 'a bearer token is required (Authorization: Bearer <adminToken>)')
    }
  }

  private async api(
    method: string,
    path: string,
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const backend = this.options.backend
    if (path === '/api/v1/stats') {
      allow(method, 'GET')
      return send(res, 200, {
        gatewayId: backend.gatewayId,
        version: VERSION,
        uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
        ...(await backend.counters()),
      })
    }
    if (path === '/api/v1/devices') {
      allow(method, 'GET')
      return send(res, 200, await page(backend, url.searchParams))
    }
    if (path === '/api/v1/dial-out') {
      allow(method, 'GET')
      return send(res, 200, { devices: await backend.dialOut() })
    }
    const m = /^\/api\/v1\/devices\/([^/]+)(\/messages)?$/.exec(path)
    if (m === null) throw new HttpError(404, `no such resource: ${path}`)
    const id = decodeURIComponent(m[1]!)
    if (!isValidTopicLevel(id)) throw new HttpError(400, `not a device id: ${JSON.stringify(id)}`)
    if (m[2] !== undefined) {
      allow(method, 'POST')
      const payloadJson = await readPayload(req, backend.maxDownlinkSize)
      await backend.send(id, payloadJson)
      return send(res, 202, { status: 'accepted', deviceId: id })
    }
    if (method === 'DELETE') {
      if (!(await backend.kick(id))) throw new HttpError(404, `device ${id} is not connected to this gateway`)
      res.writeHead(204).end()
      return
    }
    allow(method, 'GET')
    const device = await backend.device(id)
    if (device === undefined) throw new HttpError(404, `device ${id} is not connected to this gateway`)
    return send(res, 200, device)
  }
}

/** `?limit=&cursor=&prefix=`: devices in id order, from after `cursor`, with the cursor of the next page. */
async function page(
  backend: AdminBackend,
  query: URLSearchParams,
): Promise<{ devices: DeviceView[]; next: string | null }> {
  const limitText = query.get('limit')
  const limit = limitText === null ? DEFAULT_PAGE : Number(limitText)
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_LIMIT)
    throw new HttpError(400, `limit: expected an integer from 1 to ${PAGE_LIMIT}`)
  // One more than shown: whether there is a next page.
  const devices = await backend.devices({
    prefix: query.get('prefix') ?? '',
    after: query.get('cursor'),
    limit: limit + 1,
  })
  const shown = devices.slice(0, limit)
  return { devices: shown, next: devices.length > limit ? shown.at(-1)!.id : null }
}

/** `{"payload": <any JSON>}` from the request body: the payload's JSON text. */
async function readPayload(req: IncomingMessage, maxDownlinkSize: number): Promise<string> {
  // The frame the device gets is {"from":"server","payload":…}: a body much larger cannot fit.
  const limit = maxDownlinkSize + 1024
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit)
      throw new HttpError(413, `the message is over the ${maxDownlinkSize}-byte downlink limit`)
    chunks.push(chunk as Buffer)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'the body is not JSON: send {"payload": <any JSON>}')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('payload' in body))
    throw new HttpError(400, 'the body has no "payload": send {"payload": <any JSON>}')
  const payloadJson = JSON.stringify((body as { payload: unknown }).payload)
  const frameSize = Buffer.byteLength(`{"from":"server","payload":${payloadJson}}`)
  if (frameSize > maxDownlinkSize)
    throw new HttpError(
      413,
      `the message (${frameSize} bytes as sent) is over the ${maxDownlinkSize}-byte downlink limit`,
    )
  return payloadJson
}

function allow(method: string, expected: string): void {
  if (method !== expected) throw new HttpError(405, `use ${expected} here`)
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
  })
  res.end(text)
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}
