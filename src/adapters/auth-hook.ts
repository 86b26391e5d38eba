import type { ExternalAuth } from '../auth/external.js'
import { type AuthResult, digest, type ExternalGrant, externalIdentity } from '../auth/registry.js'
import { isIntegerIn } from '../config/messages.js'
import { type Logger, LogThrottle } from '../log.js'
import { Status } from '../protocol/constants.js'
import { isValidTopicLevel } from '../protocol/ids.js'
import type { LoginRequest } from '../protocol/messages.js'

export interface AuthHookOptions {
  /** Where logins with a token the registry does not know are POSTed. */
  readonly url: string
  readonly gatewayId: string
  /** How long an answer may take, ms. */
  readonly timeoutMs: number
  /** How long a positive answer is reused, ms (0: never). */
  readonly cacheTtlMs: number
  /** Requests in flight at once; more wait their turn. */
  readonly concurrency: number
  readonly logger: Logger
}

const REFUSED: AuthResult = { ok: false, status: Status.INVALID_TOKEN, reason: 'invalid_token' }
const UNAVAILABLE: AuthResult = { ok: false, status: Status.SERVER_ERROR, reason: 'auth_unavailable' }
/** Positive answers kept at most, oldest dropped first. */
const CACHE_LIMIT = 100_000

/**
 * The external auth hook (`authUrl`, EMQX's HTTP auth): a login whose token the registry does not
 * know is POSTed as `{"token", "deviceId", "ip", "gatewayId"}`. `{"allow": true, "deviceId", …}`
 * lets it in with that identity; `{"allow": false}`, 401 or 403 refuses it (INVALID_TOKEN); a
 * timeout, a connection error, a 5xx or an answer that is not one of these answers SERVER_ERROR —
 * never a login by default. Positive answers are reused for `cacheTtl`, identical requests in flight
 * share one call, and at most `concurrency` calls are in flight. Tokens are never logged.
 */
export class AuthHook implements ExternalAuth {
  private readonly cache = new Map<string, { grant: ExternalGrant; until: number }>()
  private readonly inFlight = new Map<string, Promise<AuthResult>>()
  private running = 0
  private readonly queue: (() => void)[] = []
  private readonly throttle: LogThrottle

  constructor(private readonly options: AuthHookOptions) {
    this.throttle = new LogThrottle(options.logger)
  }

  authenticate(request: LoginRequest, ip: string): Promise<AuthResult> {
    const tokenDigest = digest(request.token)
    const key = `${tokenDigest}\u0000${request.deviceId ?? ''}`
    const cached = this.cache.get(key)
    if (cached !== undefined && cached.until > Date.now()) {
      return Promise.resolve({ ok: true, identity: externalIdentity(cached.grant, tokenDigest) })
    }
    let pending = this.inFlight.get(key)
    if (pending === undefined) {
      pending = this.ask(request, ip, tokenDigest, key).finally(() => this.inFlight.delete(key))
      this.inFlight.set(key, pending)
    }
    return pending
  }

  private async ask(
    request: LoginRequest,
    ip: string,
    tokenDigest: string,
    key: string,
  ): Promise<AuthResult> {
    await this.slot()
    try {
      const grant = await this.call(request, ip)
      if (grant === 'refused') return REFUSED
      if (grant === 'unavailable') return UNAVAILABLE
      if (this.options.cacheTtlMs > 0) {
        if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!)
        this.cache.set(key, { grant, until: Date.now() + this.options.cacheTtlMs })
      }
      return { ok: true, identity: externalIdentity(grant, tokenDigest) }
    } finally {
      this.release()
    }
  }

  private async call(request: LoginRequest, ip: string): Promise<ExternalGrant | 'refused' | 'unavailable'> {
    const token = typeof request.token === 'string' ? request.token : request.token.toString('utf8')
    let res: Response
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          token,
          deviceId: request.deviceId ?? null,
          ip,
          gatewayId: this.options.gatewayId,
        }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      })
    } catch (err) {
      const name = (err as Error).name
      const why =
        name === 'TimeoutError'
          ? `no answer within ${this.options.timeoutMs} ms`
          : String((err as Error).cause ?? err)
      this.throttle.warn('auth_unreachable', 'auth hook unavailable: login answered SERVER_ERROR', {
        error: why,
      })
      return 'unavailable'
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel()
      return 'refused'
    }
    if (res.status !== 200) {
      await res.body?.cancel()
      this.throttle.warn(`auth_status_${res.status}`, 'auth hook failed: login answered SERVER_ERROR', {
        status: res.status,
      })
      return 'unavailable'
    }
    let answer: unknown
    try {
      answer = await res.json()
    } catch {
      answer = undefined
    }
    const grant = readAnswer(answer)
    if (grant === undefined) {
      this.throttle.warn(
        'auth_answer',
        'auth hook answered neither allow nor refuse: login answered SERVER_ERROR',
      )
      return 'unavailable'
    }
    return grant
  }

  private slot(): Promise<void> {
    if (this.running < this.options.concurrency) {
      this.running++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.queue.push(resolve))
  }

  private release(): void {
    const next = this.queue.shift()
    if (next !== undefined) next()
    else this.running--
  }
}

/**
 * `{"allow": true, "deviceId", "username"?, "allowTargets"?, "allowBroadcast"?, "maxDownlinkSize"?,
 * "maxDownlinkMembers"?}` or `{"allow": false}`.
 */
function readAnswer(answer: unknown): ExternalGrant | 'refused' | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined
  const a = answer as Record<string, unknown>
  if (a.allow === false) return 'refused'
  if (a.allow !== true || !isDeviceId(a.deviceId)) return undefined
  if (a.username !== undefined && !isDeviceId(a.username)) return undefined
  const targets = a.allowTargets
  if (targets !== undefined && !(Array.isArray(targets) && targets.every((t) => typeof t === 'string')))
    return undefined
  if (a.allowBroadcast !== undefined && typeof a.allowBroadcast !== 'boolean') return undefined
  const { maxDownlinkSize: size, maxDownlinkMembers: members } = a
  if (size !== undefined && !isIntegerIn(size, 16, 65_535)) return undefined
  if (members !== undefined && !isIntegerIn(members, 0, 65_535)) return undefined
  return {
    deviceId: a.deviceId,
    ...(a.username === undefined ? {} : { username: a.username as string }),
    ...(targets === undefined ? {} : { allowTargets: targets as string[] }),
    ...(a.allowBroadcast === undefined ? {} : { allowBroadcast: a.allowBroadcast }),
    ...(size === undefined ? {} : { maxDownlinkSize: size }),
    ...(members === undefined ? {} : { maxDownlinkMembers: members }),
  }
}

function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && isValidTopicLevel(value) && value !== 'server' && value !== 'broadcast'
}
