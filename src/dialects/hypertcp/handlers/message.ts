import { Status } from '../../../protocol/constants.js'
import { parseEnvelope } from '../../../protocol/envelope.js'
import { isAllowedId } from '../../../protocol/ids.js'
import { isJsonPing, pongBody } from '../../../protocol/messages.js'
import type { HandlerContext } from '../../../session/context.js'

/**
 * JSON_MESSAGE and BROADCAST ([HT-4]). Validates the envelope, answers the in-band JSON ping
 * ([HT-3.5]) itself, and hands everything else to the host, which acks once the broker has it.
 */
export function handleMessage(ctx: HandlerContext, msgId: number, body: Buffer, broadcast: boolean): void {
  if (!ctx.allowMessage()) {
    // Over its message rate (checked before any parsing): a clear answer, never a silent drop.
    ctx.reply(msgId, Status.QUOTA_LIMIT)
    return
  }
  const envelope = parseEnvelope(body)
  if (!envelope.ok) {
    ctx.debug('bad message body', { reason: envelope.reason })
    ctx.rejected()
    ctx.reply(msgId, Status.ILLEGAL_COMMAND_BODY) // [HT-4.1] nothing published, kept connected
    return
  }
  const { targetId, payloadJson } = envelope
  // [HT-4.3] A BROADCAST frame broadcasts whatever its targetId says.
  if (broadcast || targetId === 'broadcast') {
    ctx.uplink(msgId, 'broadcast', 'broadcast', payloadJson)
    return
  }
  if (targetId === 'server') {
    if (envelope.mayBePing) {
      const payload: unknown = JSON.parse(payloadJson) // valid: the scanner checked it
      if (isJsonPing(payload)) return answerPing(ctx, msgId, payload)
    }
    ctx.uplink(msgId, 'server', 'server', payloadJson)
    return
  }
  // [HT-4.4] Device to device. The id becomes a topic level: no wildcards, '/' or NUL; and only
  // characters that show (idCharset).
  if (!isAllowedId(targetId, ctx.idCharset)) {
    ctx.debug('bad targetId', { targetId })
    ctx.rejected()
    ctx.reply(msgId, Status.ILLEGAL_COMMAND_BODY)
    return
  }
  ctx.uplink(msgId, 'direct', targetId, payloadJson)
}

/**
 * [HT-3.5] Acked, then answered in-band with a pong; not published upstream. A ping whose echo
 * would exceed the device's downlink limit gets ILLEGAL_COMMAND_BODY instead of a cut pong.
 */
function answerPing(ctx: HandlerContext, msgId: number, ping: Record<string, unknown>): void {
  const pong = pongBody(ping)
  if (Buffer.byteLength(pong) > ctx.maxDownlinkSize) {
    ctx.reply(msgId, Status.ILLEGAL_COMMAND_BODY)
    return
  }
  ctx.pong(msgId, pong)
}
