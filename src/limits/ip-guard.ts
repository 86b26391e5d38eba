import { BlockList, isIP } from 'node:net'
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
 * (brute force). Pure apart from Node's BlockList; the clock is passed in. Tracks at most
 * `maxTracked` addresses: an attacker cycling through addresses evicts old entries rather than
 * growing memory.
 */
export class IpGuard {
  // Undefined when empty: BlockList.check allocates, and most lists are empty.
  private readonly allow: BlockList | undefined
  private readonly deny: BlockList | undefined
  private readonly exempt: BlockList | undefined
  private readonly entries = new Map<string, Entry>()
  /** Exempt verdicts by address: BlockList.check allocates, and connections repeat addresses. */
  private readonly exemptCache = new Map<string, boolean>()

  constructor(private readonly options: IpGuardOptions) {
    this.allow = options.allow.length > 0 ? blockList(options.allow) : undefined
    this.deny = options.deny.length > 0 ? blockList(options.deny) : undefined
    this.exempt = options.exempt.length > 0 ? blockList(options.exempt) : undefined
  }

  /** How many addresses are being tracked (for stats and tests). */
  get tracked(): number {
    return this.entries.size
  }

  /** Decides on a new connection from `ip`. */
  admit(address: string, now: number): Admission {
    const ip = normalizeIp(address)
    const family = familyOf(ip)
    if (this.deny?.check(ip, family)) return 'denied'
    if (this.allow && !this.allow.check(ip, family)) return 'denied'
    if (this.isExempt(ip)) return 'ok'
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
    if (failureLimit <= 0 || this.isExempt(ip)) return false
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

  private isExempt(ip: string): boolean {
    if (this.exempt === undefined) return false
    let verdict = this.exemptCache.get(ip)
    if (verdict === undefined) {
      if (this.exemptCache.size >= this.options.maxTracked) this.exemptCache.clear()
      verdict = this.exempt.check(ip, familyOf(ip))
      this.exemptCache.set(ip, verdict)
    }
    return verdict
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

function familyOf(ip: string): 'ipv4' | 'ipv6' {
  return isIP(ip) === 6 ? 'ipv6' : 'ipv4'
}

/** A BlockList of `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::y/n` entries (validated in config). */
export function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const { address, prefix, family } = parseCidr(cidr)!
    if (prefix === undefined) list.addAddress(address, family)
    else list.addSubnet(address, prefix, family)
  }
  return list
}

/** Parses a CIDR or a plain address; undefined if it is neither. */
export function parseCidr(
  cidr: string,
): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, bits, extra] = cidr.trim().split('/')
  if (address === undefined || extra !== undefined) return undefined
  const version = isIP(address)
  if (version === 0) return undefined
  const family = version === 6 ? 'ipv6' : 'ipv4'
  if (bits === undefined) return { address, prefix: undefined, family }
  const prefix = Number(bits)
  const max = version === 6 ? 128 : 32
  if (!/^\d+$/.test(bits) || prefix > max) return undefined
  return { address, prefix, family }
}
