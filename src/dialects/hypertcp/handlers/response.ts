import type { HandlerContext } from '../../../session/context.js'

/** [HT-3.6] A device's RESPONSE acknowledges a gateway frame with that msg_id. */
export function handleResponse(ctx: HandlerContext, msgId: number): void {
  ctx.acknowledged(msgId)
  ctx.debug('device ack', { msgId })
}
