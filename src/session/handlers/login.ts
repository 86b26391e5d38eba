import { Cmd } from '../../protocol/constants.js'
import { encodeTextFrame } from '../../protocol/encoder.js'
import { parseLogin, redirectBody } from '../../protocol/messages.js'
import type { Session } from '../session.js'

/** [HT-2.1], [HT-2.2], [HT-3.2] LOGIN: raw-token or JSON form; the reply waits for `attach`. */
export function handleLogin(session: Session, msgId: number, body: Buffer): void {
  const gate = session.options.gatekeeper.checkLogin(session)
  switch (gate.action) {
    case 'redirect':
      // [HT-6.4] At capacity or draining: the device is sent to a peer instead of refused.
      session.log('info', 'login redirected to a peer gateway', { server: gate.server, port: gate.port })
      session.write(encodeTextFrame(Cmd.REDIRECT, session.nextMsgId(), redirectBody(gate.server, gate.port)))
      session.close('redirected')
      return
    case 'refuse':
      session.log('info', 'login refused before authentication', { reason: gate.reason })
      session.refuseLogin(msgId, gate.status, gate.reason)
      return
    case 'proceed':
      break
  }
  const request = parseLogin(body)
  const result = session.host.authenticate(request)
  if (!result.ok) {
    session.options.throttle.warn(`login_${result.reason}`, 'login refused', {
      reason: result.reason,
      remote: session.remote,
      claimedId: request.deviceId,
    })
    session.options.gatekeeper.loginFailed(session)
    session.refuseLogin(msgId, result.status, result.reason)
    return
  }
  session.login(msgId, result.identity)
}
