import { hash } from 'node:crypto'
import { Status } from '../protocol/constants.js'

/** One device of the registry (the config file's `devices` entries). */
export interface DeviceEntry {
  /** Device id: the `%c` of topic templates. */
  readonly id: string
  /** Secret the device logs in with. Never logged. */
  readonly token: string
  /** The `%u` of topic templates; defaults to the device id. */
  readonly username?: string
  /** Further ids the JSON login form may claim with this token ([HT-3.3]). */
  readonly allowedIds?: readonly string[]
  /**
   * Devices this one may message directly: ids, or prefixes ending in `*` (`"relay-*"`).
   * Default: any. Others are answered NOT_ALLOWED.
   */
  readonly allowTargets?: readonly string[]
  /** Whether it may broadcast. Default true. */
  readonly allowBroadcast?: boolean
  /** Largest frame body sent to it, bytes (at most the gateway's `maxDownlinkSize`). */
  readonly maxDownlinkSize?: number
  /** Most members and elements a downlink's payload may hold, counted at every depth. */
  readonly maxDownlinkMembers?: number
}

/** What a device can take, where its registry entry or the auth hook says (else the gateway's limits). */
export interface DownlinkLimits {
  readonly maxDownlinkSize?: number
  readonly maxDownlinkMembers?: number
}

/** Who a logged-in connection is, and what it may reach. */
export interface Identity {
  readonly deviceId: string
  readonly username: string
  /** The digest of the token it logged in with (to re-check it when the registry is reloaded). */
  readonly tokenDigest: string
  /** Whether it may message `targetId` directly ([HT-4.4] publish ACL). */
  readonly mayMessage: (targetId: string) => boolean
  readonly mayBroadcast: boolean
  /** Granted by the external auth hook (`authUrl`), not by the registry: a registry reload leaves it be. */
  readonly external?: boolean
  /** A device the gateway dials (`dialOut`), not of the registry: a registry reload leaves it be. */
  readonly dialed?: boolean
  /** Its own downlink limits, if it has any. */
  readonly downlink?: DownlinkLimits
}

export type AuthResult =
  | { readonly ok: true; readonly identity: Identity }
  | {
      readonly ok: false
      readonly status: number
      /** `auth_unavailable`: the external auth hook could not answer (it is not the device's fault). */
      readonly reason: 'invalid_token' | 'not_allowed' | 'auth_unavailable'
    }

interface Grant {
  readonly id: string
  readonly username: string
  readonly ids: ReadonlySet<string>
  readonly mayMessage: (targetId: string) => boolean
  readonly mayBroadcast: boolean
  readonly downlink: DownlinkLimits | undefined
}

/** The limits an entry or a grant sets, or undefined when it sets none. */
function downlinkLimits(from: DownlinkLimits): DownlinkLimits | undefined {
  const { maxDownlinkSize, maxDownlinkMembers } = from
  if (maxDownlinkSize === undefined && maxDownlinkMembers === undefined) return undefined
  return {
    ...(maxDownlinkSize === undefined ? {} : { maxDownlinkSize }),
    ...(maxDownlinkMembers === undefined ? {} : { maxDownlinkMembers }),
  }
}

const ANY = () => true

/** `["relay-1", "sensor-*"]` → a predicate; `*` at the end matches any suffix. */
function targetMatcher(patterns: readonly string[] | undefined): (targetId: string) => boolean {
  if (patterns === undefined || patterns.includes('*')) return ANY
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')))
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (id) => exact.has(id) || prefixes.some((p) => id.startsWith(p))
}

function withDownlink(downlink: DownlinkLimits | undefined): { downlink?: DownlinkLimits } {
  return downlink === undefined ? {} : { downlink }
}

/** A token's SHA-256 digest: what the gateway keeps instead of the token. */
export function digest(token: Buffer | string): string {
  return hash('sha256', token, 'base64')
}

/** What the external auth hook may grant: an id, its `%u`, and its publish ACL. */
export interface ExternalGrant {
  readonly deviceId: string
  readonly username?: string
  readonly allowTargets?: readonly string[]
  readonly allowBroadcast?: boolean
  readonly maxDownlinkSize?: number
  readonly maxDownlinkMembers?: number
}

/** The identity of a device the external auth hook let in. */
export function externalIdentity(grant: ExternalGrant, tokenDigest: string): Identity {
  return {
    deviceId: grant.deviceId,
    username: grant.username ?? grant.deviceId,
    tokenDigest,
    mayMessage: targetMatcher(grant.allowTargets),
    mayBroadcast: grant.allowBroadcast ?? true,
    external: true,
    ...withDownlink(downlinkLimits(grant)),
  }
}

/**
 * Token → device lookups ([HT-3.2], [HT-3.3]). Tokens are kept only as SHA-256 digests, so the
 * lookup costs the same whatever part of a guess is right, and a heap dump holds no tokens.
 */
export class DeviceRegistry {
  private readonly byDigest = new Map<string, Grant>()
  private readonly usernames = new Map<string, string>()

  constructor(devices: readonly DeviceEntry[]) {
    for (const d of devices) {
      const grant: Grant = {
        id: d.id,
        username: d.username ?? d.id,
        ids: new Set([d.id, ...(d.allowedIds ?? [])]),
        mayMessage: targetMatcher(d.allowTargets),
        mayBroadcast: d.allowBroadcast ?? true,
        downlink: downlinkLimits(d),
      }
      this.byDigest.set(digest(d.token), grant)
      for (const id of grant.ids) this.usernames.set(id, grant.username)
    }
  }

  get size(): number {
    return this.byDigest.size
  }

  /** Every device id the registry lets in (entries' ids and their allowedIds). */
  ids(): IterableIterator<string> {
    return this.usernames.keys()
  }

  /** The `%u` of a device id: its entry's username, or the id itself for a device not listed here. */
  usernameOf(deviceId: string): string {
    return this.usernames.get(deviceId) ?? deviceId
  }

  /**
   * Unknown token: INVALID_TOKEN. A claimed id the token does not allow: NOT_ALLOWED.
   * Without a claim, the device is the token's own id.
   */
  authenticate(token: Buffer | string, claimedId: string | undefined): AuthResult {
    const tokenDigest = digest(token)
    const grant = this.byDigest.get(tokenDigest)
    if (grant === undefined) return { ok: false, status: Status.INVALID_TOKEN, reason: 'invalid_token' }
    const deviceId = claimedId ?? grant.id
    if (!grant.ids.has(deviceId)) return { ok: false, status: Status.NOT_ALLOWED, reason: 'not_allowed' }
    const { username, mayMessage, mayBroadcast } = grant
    return {
      ok: true,
      identity: {
        deviceId,
        username,
        tokenDigest,
        mayMessage,
        mayBroadcast,
        ...withDownlink(grant.downlink),
      },
    }
  }

  /**
   * Whether a connection that logged in as `identity` would still be let in by this registry
   * (after a reload: a revoked token, or an id no longer allowed for it, is not).
   */
  stillAdmits(identity: Identity): boolean {
    if (identity.external || identity.dialed) return true
    return this.byDigest.get(identity.tokenDigest)?.ids.has(identity.deviceId) ?? false
  }
}
