import { createHash } from 'node:crypto'
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
}

/** Who a logged-in connection is. */
export interface Identity {
  readonly deviceId: string
  readonly username: string
}

export type AuthResult =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly status: number; readonly reason: 'invalid_token' | 'not_allowed' }

interface Grant {
  readonly id: string
  readonly username: string
  readonly ids: ReadonlySet<string>
}

function digest(token: Buffer | string): string {
  return createHash('sha256').update(token).digest('base64')
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
      const grant = { id: d.id, username: d.username ?? d.id, ids: new Set([d.id, ...(d.allowedIds ?? [])]) }
      this.byDigest.set(digest(d.token), grant)
      for (const id of grant.ids) this.usernames.set(id, grant.username)
    }
  }

  get size(): number {
    return this.byDigest.size
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
    const grant = this.byDigest.get(digest(token))
    if (grant === undefined) return { ok: false, status: Status.INVALID_TOKEN, reason: 'invalid_token' }
    if (claimedId === undefined || claimedId === grant.id) {
      return { ok: true, identity: { deviceId: grant.id, username: grant.username } }
    }
    if (!grant.ids.has(claimedId)) return { ok: false, status: Status.NOT_ALLOWED, reason: 'not_allowed' }
    return { ok: true, identity: { deviceId: claimedId, username: grant.username } }
  }
}
