import { isIP } from 'node:net'
import { CidrList } from './cidr.js'
import { TokenBucket } from './token-bucket.js'

export interface IpGuardOptions {
  /** Connections per second per IP (0 = no limit), and the burst allowed. */
  readonly connectionRate: number
  readonly connectionBurst: number
  /** Login failures per IP within `failureWindowMs` that trigger a ban of `banMs` (0 = never). */
  readonly failureLimit: number
  readonly failureWindowMs: number
  readonly banMs: number
  /** If not empty, only these networks may connect. */
  readonly allow: readonly string[]
  /** These networks may never connect. */
  readonly deny: readonly string[]
  /** Networks the rate limits and bans do not apply to (allow/deny still do). */
  readonly exempt: readonly string[]
  /** Most IPs tracked at once; the oldest entries are dropped beyond it (memory stays bounded). */
  readonly maxTracked: number
}

export type Admission = 'ok' | 'denied' | 'rate_limited' | 'banned'

interface Entry {
  bucket: TokenBucket | undefined
  /** Failure times within the window, oldest first (at most `failureLimit`). */
  failures: number[]
  bannedUntil: number
}

/**
 * Per-IP admission: CIDR allow/deny lists, connection rate, and a ban after repeated login failures
 * (brute force). The clock is passed in. Tracks at most `maxTracked` addresses: an attacker
 * cycling through addresses evicts old entries rather than growing memory.
 */
export class IpGuard {
  // Undefined when empty (most lists are).
  private readonly allow: CidrList | undefined
  private readonly deny: CidrList | undefined
  private readonly exempt: CidrList | undefined
  private readonly entries = new Map<string, Entry>()

  constructor(private readonly options: IpGuardOptions) {
    this.allow = options.allow.length > 0 ? new CidrList(options.allow) : undefined
    this.deny = options.deny.length > 0 ? new CidrList(options.deny) : undefined
    this.exempt = options.exempt.length > 0 ? new CidrList(options.exempt) : undefined
  }

  /** How many addresses are being tracked (for stats and tests). */
  get tracked(): number {
    return this.entries.size
  }

  /** Decides on a new connection from `ip`. */
  admit(address: string, now: number): Admission {
    const ip = normalizeIp(address)
    if (this.deny?.has(ip)) return 'denied'
    if (this.allow && !this.allow.has(ip)) return 'denied'
    if (this.exempt?.has(ip)) return 'ok'
    const entry = this.entries.get(ip)
    if (entry !== undefined && entry.bannedUntil > now) return 'banned'
    if (this.options.connectionRate <= 0) return 'ok'
    const e = entry ?? this.track(ip)
    e.bucket ??= new TokenBucket(this.options.connectionRate, this.options.connectionBurst, now)
    return e.bucket.take(now) ? 'ok' : 'rate_limited'
  }

  /** Whether logins from `ip` are refused right now. */
  isBanned(address: string, now: number): boolean {
    const entry = this.entries.get(normalizeIp(address))
    return entry !== undefined && entry.bannedUntil > now
  }

  /** Records a failed login; returns true if this failure starts a ban. */
  loginFailed(address: string, now: number): boolean {
    const ip = normalizeIp(address)
    const { failureLimit, failureWindowMs, banMs } = this.options
    if (failureLimit <= 0 || this.exempt?.has(ip)) return false
    const e = this.entries.get(ip) ?? this.track(ip)
    const since = now - failureWindowMs
    while (e.failures.length > 0 && e.failures[0]! <= since) e.failures.shift()
    e.failures.push(now)
    if (e.failures.length < failureLimit) return false
    e.failures = []
    e.bannedUntil = now + banMs
    return true
  }

  /** Forgets entries that no longer hold anything (call now and then). */
  sweep(now: number): void {
    for (const [ip, e] of this.entries) {
      const failing =
        e.failures.length > 0 && e.failures[e.failures.length - 1]! > now - this.options.failureWindowMs
      if (e.bannedUntil <= now && !failing && (e.bucket === undefined || e.bucket.idle(now)))
        this.entries.delete(ip)
    }
  }

  private track(ip: string): Entry {
    if (this.entries.size >= this.options.maxTracked) {
      // Maps iterate in insertion order: drop the oldest.
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    const e: Entry = { bucket: undefined, failures: [], bannedUntil: 0 }
    this.entries.set(ip, e)
    return e
  }
}

/** `::ffff:1.2.3.4` (how a dual-stack listener reports IPv4 peers) is `1.2.3.4`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip
}
