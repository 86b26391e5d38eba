import { Cmd } from '../../protocol/constants.js'
import { encodeFrame, encodeResponse, encodeTextFrame } from '../../protocol/encoder.js'
import { payloadOf } from '../../protocol/messages.js'
import type { Dialect, Translated } from '../../session/dialect.js'
import { pinWrites } from './codec.js'
import { BLYNK_DEFAULT_BUFF_IN, BlynkCmd } from './constants.js'
import { beforeLogin, online } from './handlers.js'

const NOT_PINS: Translated = { ok: false, reason: 'not a pin write' }

/**
 * Blynk devices, unchanged (the Blynk library 1.x): HW_LOGIN with the raw token, answers with the
 * status in the length field and no body, pin writes in `\0`-separated HARDWARE frames.
 */
export const blynk: Dialect = {
  name: 'blynk',
  beforeLogin,
  online,
  loginReply: encodeResponse,
  answer: (msgId, status) => (status === 0 ? undefined : encodeResponse(msgId, status)),
  ping: (msgId) => encodeFrame(BlynkCmd.PING, msgId),
  redirect: (msgId, server, port) => encodeTextFrame(BlynkCmd.REDIRECT, msgId, `${server}\0${port}`),
  translate(type, body, payload) {
    if (type !== Cmd.JSON_MESSAGE && type !== Cmd.BROADCAST) return NOT_PINS
    // A kept message comes back as its envelope only.
    const value = payloadOf(body, payload)
    const writes = pinWrites(value)
    return writes.ok ? { ok: true, type: BlynkCmd.HARDWARE, bodies: writes.bodies } : writes
  },
  maxDownlinkSize: BLYNK_DEFAULT_BUFF_IN,
  // A Blynk device answers nothing it is sent: what is written to it is taken as delivered.
  acknowledgesDownlinks: false,
}
