import { payloadOf } from '../protocol/messages.js'
import type { HandlerContext } from '../session/context.js'
import type { Peer, Translated } from '../session/dialect.js'

/**
 * What a dialed device with no protocol of its own (lines, raw bytes) shares: the connection is its
 * login, nothing is answered, and what it is sent is written as bytes, with no header.
 */
export const unanswered = {
  open: (ctx: HandlerContext, peer: Peer) => ctx.login(0, peer.identity),
  beforeLogin: () => {}, // nothing is read before the login, which is the connection itself
  answer: () => undefined,
  encode: (_type: number, _msgId: number, body: string) => Buffer.from(body),
  acknowledgesDownlinks: false,
} as const

/**
 * A message for a dialed device as text: a JSON string's text, any other JSON as its text, then
 * `end` (a newline for lines). `payload` is the envelope's (parsed again from a kept message).
 */
export function asText(body: Buffer | string, payload: unknown, end: string): Translated {
  const value = payloadOf(body, payload)
  if (value === undefined) return { ok: false, reason: 'no payload' }
  return { ok: true, type: 0, bodies: [`${typeof value === 'string' ? value : JSON.stringify(value)}${end}`] }
}
