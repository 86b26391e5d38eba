import { GatewayError } from '../../errors.js'
import { Cmd, Status } from '../../protocol/constants.js'
import type { Session } from '../session.js'
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
export function dispatch(session: Session, type: number, msgId: number, body: Buffer): void {
  const state = session.state
  switch (state) {
    case 'awaiting-login':
      return dispatchBeforeLogin(session, type, msgId, body)
    case 'online':
      return dispatchOnline(session, type, msgId, body)
    case 'authenticating':
    case 'closed':
      // Reading is paused in these states; a frame here is a bug, not input to act on.
      session.logger.error('frame dispatched in a state that reads nothing', { state, type })
      return
    default: {
      const never: never = state
      throw new GatewayError('HT_ERR_INTERNAL', `unhandled session state ${String(never)}`)
    }
  }
}

/** [HT-3.1] Before login only LOGIN and PING are accepted. */
function dispatchBeforeLogin(session: Session, type: number, msgId: number, body: Buffer): void {
  if (type === Cmd.LOGIN) return handleLogin(session, msgId, body)
  if (type === Cmd.PING) return handlePing(session, msgId)
  session.debug('frame before login', { type })
  session.reply(msgId, Status.NOT_AUTHENTICATED)
  session.close('not_authenticated')
}

function dispatchOnline(session: Session, type: number, msgId: number, body: Buffer): void {
  switch (type) {
    case Cmd.PING:
      return handlePing(session, msgId)
    case Cmd.RESPONSE:
      return handleResponse(session, msgId)
    case Cmd.JSON_MESSAGE:
      return handleMessage(session, msgId, body, false)
    case Cmd.BROADCAST:
      return handleMessage(session, msgId, body, true)
    case Cmd.LOGIN:
      // [HT-3.2] A second LOGIN on a logged-in connection is answered and ignored.
      session.debug('LOGIN while logged in: ignored')
      return session.reply(msgId, Status.ILLEGAL_COMMAND)
    default:
      if (session.host.takesRaw(type)) return handleCustom(session, type, msgId, body)
      return handleUnknown(session, type, msgId, body)
  }
}
