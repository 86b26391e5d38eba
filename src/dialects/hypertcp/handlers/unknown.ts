import { Status } from '../../../protocol/constants.js'
import type { HandlerContext } from '../../../session/context.js'

/**
 * [HT-3.7] A command type the gateway does not take from devices: its body was already consumed
 * by the decoder (framing stays intact); the device gets ILLEGAL_COMMAND and stays connected.
 */
export function handleUnknown(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  ctx.debug('unknown command', { type, length: body.length })
  ctx.reply(msgId, Status.ILLEGAL_COMMAND)
}
