import { Cmd, Status } from '../../protocol/constants.js'
import { FrameDecoder } from '../../protocol/decoder.js'
import { encodeFrame, encodeResponse } from '../../protocol/encoder.js'
import { parseJsonObject, payloadOf } from '../../protocol/messages.js'
import type { HandlerContext } from '../../session/context.js'
import type { Dialect, Translated } from '../../session/dialect.js'

/**
 * HyperTCP with the roles swapped (`dialOut` framing `hypertcp`, PROTOCOL decision 36): the device
 * is the HyperTCP server and the gateway plays the client, as a board running the header would.
 * It logs in with the entry's token, answers what the device sends as a client does, pings it,
 * and sends it the messages of its down topic as a client's messages to `server`.
 */
export const hypertcpClient: Dialect = {
  name: 'hypertcp',
  createDecoder(maxFrameSize, onFrame, onTooLarge) {
    // What a client reads: RESPONSEs have no body, but the login reply's status byte.
    const decoder = new FrameDecoder(maxFrameSize, onFrame, onTooLarge, 'device')
    decoder.expectLoginReply = true
    return decoder
  },
  open(ctx, peer) {
    ctx.write(encodeFrame(Cmd.LOGIN, ctx.nextMsgId(), Buffer.from(peer.token ?? '')))
  },
  beforeLogin(ctx, type, msgId, body, length) {
    if (type === Cmd.PING) return ctx.reply(msgId, 0)
    if (type !== Cmd.RESPONSE || msgId !== 1)
      return ctx.debug('frame before the login reply ignored', { type })
    const status = length === 1 && body.length === 1 ? body[0]! : length
    if (status === Status.SUCCESS) return ctx.login(msgId, ctx.peer!.identity)
    ctx.log('warn', 'the device refused the login of the gateway', { status })
    ctx.refuseLogin(msgId, status, status === Status.INVALID_TOKEN ? 'invalid_token' : 'not_allowed')
  },
  online(ctx, type, msgId, body) {
    switch (type) {
      case Cmd.PING:
        return ctx.reply(msgId, 0)
      case Cmd.RESPONSE:
        return ctx.acknowledged(msgId)
      case Cmd.JSON_MESSAGE:
      case Cmd.BROADCAST:
        return publish(ctx, msgId, body)
      default:
        // As the header does: what a client does not know is skipped (its body was read).
        return ctx.debug('frame from the device ignored', { type, length: body.length })
    }
  },
  answer: encodeResponse,
  ping: (msgId) => encodeFrame(Cmd.PING, msgId),
  translate: toServer,
  acknowledgesDownlinks: true,
}

/** What the device sends: an envelope's payload (or the JSON as it is) to its up topic. */
function publish(ctx: HandlerContext, msgId: number, body: Buffer): void {
  if (!ctx.allowMessage()) return ctx.reply(msgId, Status.QUOTA_LIMIT)
  const json = parseJsonObject(body)
  if (json === undefined) {
    ctx.rejected()
    return ctx.reply(msgId, Status.ILLEGAL_COMMAND_BODY)
  }
  const payload = 'payload' in json ? json.payload : json
  ctx.uplink(msgId, 'server', 'server', JSON.stringify(payload))
}

/** A message for the device: what a client sends its server, `{"targetId":"server","payload":…}`. */
function toServer(_type: number, body: Buffer | string, payload: unknown): Translated {
  const value = payloadOf(body, payload)
  if (value === undefined) return { ok: false, reason: 'no payload' }
  return {
    ok: true,
    type: Cmd.JSON_MESSAGE,
    bodies: [`{"targetId":"server","payload":${JSON.stringify(value)}}`],
  }
}
