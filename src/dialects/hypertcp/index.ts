import { Cmd } from '../../protocol/constants.js'
import { encodeFrame, encodeLoginReply, encodeResponse, encodeTextFrame } from '../../protocol/encoder.js'
import { redirectBody } from '../../protocol/messages.js'
import type { Dialect } from '../../session/dialect.js'
import { beforeLogin, online } from './handlers/index.js'

/**
 * HyperTCP ([HT-1]–[HT-5]), the gateway's own dialect: JSON envelopes in JSON_MESSAGE and
 * BROADCAST frames, every frame answered, the login reply's status in its one body byte.
 */
export const hypertcp: Dialect = {
  name: 'hypertcp',
  beforeLogin,
  online,
  loginReply: encodeLoginReply,
  answer: encodeResponse,
  ping: (msgId) => encodeFrame(Cmd.PING, msgId),
  // [HT-2.8] the JSON form unchanged devices read
  redirect: (msgId, server, port) => encodeTextFrame(Cmd.REDIRECT, msgId, redirectBody(server, port)),
  acknowledgesDownlinks: true,
}
