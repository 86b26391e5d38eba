import { Cmd, Status } from '../../../protocol/constants.js'
import type { HandlerContext } from '../../../session/context.js'
import { handleCustom } from './custom.js'
import { handleLogin } from './login.js'
import { handleMessage } from './message.js'
import { handlePing } from './ping.js'
import { handleResponse } from './response.js'
import { handleUnknown } from './unknown.js'

/**
 * The HyperTCP frame handlers, one per file (as aedes' lib/handlers); the session calls them by
 * its state. `body` is only valid during the call.
 */

/** [HT-3.1] Before login only LOGIN and PING are accepted. */
export function beforeLogin(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  if (type === Cmd.LOGIN) return handleLogin(ctx, msgId, body)
  if (type === Cmd.PING) return handlePing(ctx, msgId)
  ctx.debug('frame before login', { type })
  ctx.reply(msgId, Status.NOT_AUTHENTICATED)
  ctx.close('not_authenticated')
}

export function online(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  switch (type) {
    case Cmd.PING:
      return handlePing(ctx, msgId)
    case Cmd.RESPONSE:
      return handleResponse(ctx, msgId)
    case Cmd.JSON_MESSAGE:
      return handleMessage(ctx, msgId, body, false)
    case Cmd.BROADCAST:
      return handleMessage(ctx, msgId, body, true)
    case Cmd.LOGIN:
      // [HT-3.2] A second LOGIN on a logged-in connection is answered and ignored.
      ctx.debug('LOGIN while logged in: ignored')
      return ctx.reply(msgId, Status.ILLEGAL_COMMAND)
    default:
      if (ctx.takesRaw(type)) return handleCustom(ctx, type, msgId, body)
      return handleUnknown(ctx, type, msgId, body)
  }
}
