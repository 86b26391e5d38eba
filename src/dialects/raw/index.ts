import { CHUNK, ChunkDecoder } from '../../protocol/stream-decoders.js'
import type { Dialect } from '../../session/dialect.js'
import { asText, unanswered } from '../dialed.js'

/**
 * Bytes, both ways (PROTOCOL decision 36): a device the gateway dials; what it sends is published
 * verbatim, in chunks of at most `maxFrameSize` as they arrive; a message for it is written as its
 * text (a JSON string's text, any other JSON as its text), with nothing added.
 */
export const raw: Dialect = {
  ...unanswered,
  name: 'raw',
  createDecoder: (maxFrameSize, onFrame) => new ChunkDecoder(maxFrameSize, onFrame),
  online(ctx, type, _msgId, body) {
    if (type !== CHUNK) return
    if (!ctx.allowMessage()) {
      ctx.throttle.warn('dial_out_rate', 'bytes dropped: over messageRate', {
        deviceId: ctx.peer?.identity.deviceId,
      })
      return
    }
    ctx.uplinkBytes(0, Buffer.from(body)) // the broker gets a copy of its own
  },
  translate: (_type, body, payload) => asText(body, payload, ''),
}
