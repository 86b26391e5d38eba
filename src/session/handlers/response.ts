import type { Session } from '../session.js'

/** [HT-3.6] A device's RESPONSE acknowledges a gateway frame with that msg_id. */
export function handleResponse(session: Session, msgId: number): void {
  session.stats.deviceAcks++
  session.debug('device ack', { msgId })
}
