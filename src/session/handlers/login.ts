import { parseLogin } from '../../protocol/messages.js'
import type { Session } from '../session.js'

/** [HT-2.1], [HT-2.2], [HT-3.2] LOGIN: raw-token or JSON form; the reply waits for `attach`. */
export function handleLogin(session: Session, msgId: number, body: Buffer): void {
  const request = parseLogin(body)
  const result = session.host.authenticate(request)
  if (!result.ok) {
    session.logger.info('login refused', { reason: result.reason, claimedId: request.deviceId })
    session.refuseLogin(msgId, result.status, result.reason)
    return
  }
  session.login(msgId, result.identity)
}
