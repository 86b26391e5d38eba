import { Status } from '../../protocol/constants.js'
import type { LoginRequest } from '../../protocol/messages.js'
import type { HandlerContext } from '../../session/context.js'
import { beginLogin } from '../../session/login.js'
import {
  eventUplink,
  fields,
  hardwareUplink,
  parseInfo,
  propertyUplink,
  syncUplink,
  type Uplink,
} from './codec.js'
import { BlynkCmd, BlynkStatus } from './constants.js'

/**
 * The Blynk frame handlers (PROTOCOL decision 35). A Blynk device is never answered for a frame
 * that went well (the library reads nothing from such an answer); errors are RESPONSEs with the
 * status in the length field, as a Blynk server sends them.
 */

/** HW_LOGIN's body is the token itself. */
function parseToken(body: Buffer): LoginRequest {
  return { token: body, deviceId: undefined }
}

export function beforeLogin(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  if (type === BlynkCmd.HW_LOGIN) return beginLogin(ctx, msgId, body, parseToken)
  if (type === BlynkCmd.PING) return ctx.reply(msgId, Status.SUCCESS)
  ctx.debug('frame before login', { type })
  ctx.reply(msgId, Status.NOT_AUTHENTICATED)
  ctx.close('not_authenticated')
}

export function online(ctx: HandlerContext, type: number, msgId: number, body: Buffer): void {
  switch (type) {
    case BlynkCmd.PING:
      return ctx.reply(msgId, Status.SUCCESS)
    case BlynkCmd.RESPONSE:
      return ctx.acknowledged(msgId)
    case BlynkCmd.HARDWARE:
      return publish(ctx, msgId, body, hardwareUplink)
    case BlynkCmd.HARDWARE_SYNC:
      return publish(ctx, msgId, body, syncUplink)
    case BlynkCmd.PROPERTY:
      return publish(ctx, msgId, body, propertyUplink)
    case BlynkCmd.EVENT_LOG:
      return publish(ctx, msgId, body, eventUplink)
    case BlynkCmd.INTERNAL:
      return internal(ctx, msgId, body)
    case BlynkCmd.GROUP: // a group's begin and end: its writes come as ordinary frames
    case BlynkCmd.DEBUG_PRINT:
    case BlynkCmd.EVENT_CLEAR:
      return
    case BlynkCmd.HW_LOGIN:
      ctx.debug('HW_LOGIN while logged in')
      return ctx.reply(msgId, BlynkStatus.ALREADY_REGISTERED)
    case BlynkCmd.BRIDGE:
      // Blynk's device-to-device bridge needs the server's per-device bridge tokens: not offered.
      ctx.throttle.warn('blynk_bridge', 'Blynk BRIDGE is not supported: refused', { remote: ctx.remote })
      ctx.rejected()
      return ctx.reply(msgId, Status.ILLEGAL_COMMAND)
    default:
      ctx.debug('unknown command', { type, length: body.length })
      return ctx.reply(msgId, Status.ILLEGAL_COMMAND)
  }
}

/** A frame that publishes on the up topic, answered only if the broker did not take it. */
function publish(ctx: HandlerContext, msgId: number, body: Buffer, read: (f: string[]) => Uplink): void {
  if (!ctx.allowMessage()) return ctx.reply(msgId, Status.QUOTA_LIMIT)
  const f = fields(body)
  const uplink = f === undefined ? undefined : read(f)
  if (uplink === undefined || !uplink.ok) {
    ctx.debug('frame refused', { length: body.length })
    ctx.rejected()
    return ctx.reply(
      msgId,
      uplink?.status === 'command' ? Status.ILLEGAL_COMMAND : Status.ILLEGAL_COMMAND_BODY,
    )
  }
  if (uplink.json !== null) ctx.uplink(msgId, 'server', 'server', uplink.json)
}

/**
 * INTERNAL: the device's info (kept, shown in its presence); other internal commands are ignored.
 * Each counts against the message rate: a presence republished per frame must not be a flood.
 */
function internal(ctx: HandlerContext, msgId: number, body: Buffer): void {
  if (!ctx.allowMessage()) return ctx.reply(msgId, Status.QUOTA_LIMIT)
  const f = fields(body)
  const info = f === undefined ? undefined : parseInfo(f)
  if (info === undefined) return ctx.debug('INTERNAL command ignored', { command: f?.[0] })
  ctx.describe(info)
}
