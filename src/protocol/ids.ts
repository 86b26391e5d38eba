/** Longest device id accepted (it becomes a topic level). */
export const MAX_ID_LENGTH = 128

/**
 * Whether `id` can stand as one topic level: non-empty, at most 128 characters, free of `/`,
 * MQTT wildcards and NUL, and not starting with `$` (a template such as `%c/dn` would make it a
 * broker-reserved `$`-topic). So a device id or a `targetId` can never reach another topic.
 */
export function isValidTopicLevel(id: string): boolean {
  if (id.length === 0 || id.length > MAX_ID_LENGTH || id.charCodeAt(0) === 0x24) return false
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c === 0x2f || c === 0x2b || c === 0x23 || c === 0) return false
  }
  return true
}

/** What characters an id may have besides {@link isValidTopicLevel}'s rules (`idCharset`). */
export const ID_CHARSETS = ['ascii', 'unicode'] as const
export type IdCharset = (typeof ID_CHARSETS)[number]

/** Controls, format characters (invisible, bidi overrides), private use, unassigned, line separators. */
const UNSEEN = /[\p{C}\p{Zl}\p{Zp}]/u

/**
 * Whether `id` may be a device id or a `targetId`: one topic level, and `ascii`: printable ASCII
 * only (0x20–0x7e), or `unicode`: any character that shows (no controls, no invisible or
 * direction-changing ones). Either way an id cannot hide in a log line or pass for another.
 */
export function isAllowedId(id: string, charset: IdCharset): boolean {
  if (!isValidTopicLevel(id)) return false
  if (charset === 'unicode') return !UNSEEN.test(id)
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c < 0x20 || c > 0x7e) return false
  }
  return true
}
