/** Longest device id accepted (it becomes a topic level). */
export const MAX_ID_LENGTH = 128

/**
 * Whether `id` can stand as one topic level: non-empty, at most 128 characters, and free of
 * `/`, MQTT wildcards and NUL, so a device id or a `targetId` can never reach another topic.
 */
export function isValidTopicLevel(id: string): boolean {
  if (id.length === 0 || id.length > MAX_ID_LENGTH) return false
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c === 0x2f || c === 0x2b || c === 0x23 || c === 0) return false
  }
  return true
}
