import type { Session } from '../session.js'

/** [HT-3.4] A device PING gets RESPONSE(same msg_id, length=0), before or after login. */
export function handlePing(session: Session, msgId: number): void {
  session.reply(msgId, 0)
}
