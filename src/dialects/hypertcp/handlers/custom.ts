import { Status } from '../../../protocol/constants.js'
import type { HandlerContext } from '../../../session/context.js'

/**
 * [HT-5.6] A frame of a custom command type mapped to a raw up topic: its body goes to the
 * broker verbatim, and the device is answered once the broker has it ([HT-4.5]). The message
 * rate and the in-flight bound apply as to JSON messages.
 */
export function handleCustom(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  if (!ctx.allowMessage()) {
    ctx.reply(msgId, Status.QUOTA_LIMIT)
    return
  }
  // `body` is only valid during the call; the broker gets a copy of its own.
  ctx.uplinkRaw(msgId, type, Buffer.from(body))
}
