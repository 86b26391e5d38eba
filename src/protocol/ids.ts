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
