/**
 * The two packets the broker sends once per message, read without mqtt-packet (a packet object
 * and a copy of the payload each): PUBLISH (MQTT 3.1.1 3.3 / MQTT 5 3.3), one per downlink, and
 * PUBACK (3.4), one per uplink. Pure functions over a packet's bytes from its variable header
 * (`at`) to its `end`, as the PacketReader hands them out.
 */

/** A PUBLISH's fields; `payload` is a view of the packet. */
export interface InboundPublish {
  readonly topic: string
  readonly qos: 0 | 1 | 2
  readonly retained: boolean
  /** Packet identifier (QoS 1 and 2), else 0. */
  readonly id: number
  readonly payload: Buffer
}

/**
 * Reads a PUBLISH, or returns what is wrong with it. MQTT 5 properties are skipped: the gateway
 * uses none of them (its CONNECT allowed no topic aliases, so a PUBLISH always names its topic).
 */
export function readPublish(
  level: 4 | 5,
  first: number,
  packet: Buffer,
  at: number,
  end: number,
): InboundPublish | string {
  const qos = (first >> 1) & 3
  let o = at
  if (qos === 3) return 'a PUBLISH with QoS 3'
  if (end - o < 2) return 'a PUBLISH without a topic'
  const topicLength = (packet[o]! << 8) | packet[o + 1]!
  o += 2
  if (topicLength === 0 || o + topicLength + (qos > 0 ? 2 : 0) > end)
    return 'a PUBLISH with a bad topic length'
  const topic = packet.toString('utf8', o, o + topicLength)
  o += topicLength
  let id = 0
  if (qos > 0) {
    id = (packet[o]! << 8) | packet[o + 1]!
    o += 2
  }
  if (level === 5) {
    let length = 0
    let multiplier = 1
    let b: number
    do {
      if (o >= end || multiplier > 128 ** 3) return 'a PUBLISH with bad properties'
      b = packet[o++]!
      length += (b & 0x7f) * multiplier
      multiplier *= 128
    } while ((b & 0x80) !== 0)
    o += length
    if (o > end) return 'a PUBLISH with bad properties'
  }
  return { topic, qos: qos as 0 | 1 | 2, retained: (first & 1) === 1, id, payload: packet.subarray(o, end) }
}

/**
 * A PUBACK's packet identifier and reason code (0 when left out: MQTT 5 3.4.2.1), or nothing for a
 * PUBACK too short to carry an identifier (undefined).
 */
export function readPuback(
  packet: Buffer,
  at: number,
  end: number,
): { id: number; reason: number } | undefined {
  const length = end - at
  if (length < 2) return undefined
  return { id: (packet[at]! << 8) | packet[at + 1]!, reason: length > 2 ? packet[at + 2]! : 0 }
}

/** The first bytes of a PUBLISH refused for its size: enough for its topic and identifier, or undefined. */
export function readPublishHead(
  first: number,
  head: Buffer,
): { topic: string; qos: number; id: number } | undefined {
  const qos = (first >> 1) & 3
  if (qos === 3 || head.length < 2) return undefined
  const topicLength = (head[0]! << 8) | head[1]!
  if (2 + topicLength + (qos > 0 ? 2 : 0) > head.length) return undefined
  const id = qos > 0 ? (head[2 + topicLength]! << 8) | head[3 + topicLength]! : 0
  return { topic: head.toString('utf8', 2, 2 + topicLength), qos, id }
}
