import type { HandlerContext } from '../../../session/context.js'

/** [HT-3.4] A device PING gets RESPONSE(same msg_id, length=0), before or after login. */
export function handlePing(ctx: HandlerContext, msgId: number): void {
  ctx.reply(msgId, 0)
}
