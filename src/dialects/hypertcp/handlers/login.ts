import { parseLogin } from '../../../protocol/messages.js'
import type { HandlerContext } from '../../../session/context.js'
import { beginLogin } from '../../../session/login.js'

/** [HT-2.1], [HT-2.2], [HT-3.2] LOGIN: raw-token or JSON form; the reply waits for `attach`. */
export function handleLogin(ctx: HandlerContext, msgId: number, body: Buffer): void {
  beginLogin(ctx, msgId, body, parseLogin)
}
