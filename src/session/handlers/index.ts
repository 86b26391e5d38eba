import { GatewayError } from '../../errors.js'
import { Cmd, Status } from '../../protocol/constants.js'
import type { HandlerContext } from './context.js'
import { handleCustom } from './custom.js'
import { handleLogin } from './login.js'
import { handleMessage } from './message.js'
import { handlePing } from './ping.js'
import { handleResponse } from './response.js'
import { handleUnknown } from './unknown.js'

/**
 * The guarded dispatcher: checks the session state first, then hands the frame to the handler of
 * its command (one per file, as aedes' lib/handlers). `body` is only valid during the call.
 */
export function dispatch(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  const state = ctx.state
  switch (state) {
    case 'awaiting-login':
      return dispatchBeforeLogin(ctx, type, msgId, body)
    case 'online':
      return dispatchOnline(ctx, type, msgId, body)
    case 'authenticating':
    case 'closed':
      // Reading is paused in these states; a frame here is a bug, not input to act on.
      ctx.logger.error('frame dispatched in a state that reads nothing', { state, type })
      return
    default: {
      const never: never = state
      throw new GatewayError('HT_ERR_INTERNAL', `unhandled session state ${String(never)}`)
    }
  }
}

/** [HT-3.1] Before login only LOGIN and PING are accepted. */
function dispatchBeforeLogin(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  if (type === Cmd.LOGIN) return handleLogin(ctx, msgId, body)
  if (type === Cmd.PING) return handlePing(ctx, msgId)
  ctx.debug('frame before login', { type })
  ctx.reply(msgId, Status.NOT_AUTHENTICATED)
  ctx.close('not_authenticated')
}

function dispatchOnline(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
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
