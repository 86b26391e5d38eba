/**
 * Which of `count` broker connections carries a device's traffic: a hash of its id (FNV-1a), so
 * that everything about one device — takeover, subscriptions, presence, its messages in order —
 * goes over one connection, and every instance and restart picks the same one.
 */
export function laneIndex(deviceId: string, count: number): number {
  if (count <= 1) return 0
  let h = 0x811c9dc5
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % count
}

/** One of `count` workers sharing a host (`workers`): the devices whose id hashes to `index` are its. */
export interface Share {
  readonly index: number
  readonly count: number
}

/** Whether a device falls to this worker ({@link laneIndex} over the workers); with no share, every one does. */
export function inShare(share: Share | undefined, deviceId: string): boolean {
  return share === undefined || laneIndex(deviceId, share.count) === share.index
}
