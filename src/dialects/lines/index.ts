import { LINE, LINE_CUT, LineDecoder } from '../../protocol/stream-decoders.js'
import type { HandlerContext } from '../../session/context.js'
import type { Dialect } from '../../session/dialect.js'
import { asText, unanswered } from '../dialed.js'

/**
 * Text lines, both ways (PROTOCOL decision 36): a device the gateway dials, talked to as with
 * telnet. A line that is JSON is published as that JSON, any other as a JSON string; a message
 * for the device is written as a line (a JSON string as its text). Nothing is answered: the
 * device has no acknowledgements to read.
 */
export const lines: Dialect = {
  ...unanswered,
  name: 'lines',
  createDecoder: (maxFrameSize, onFrame) => new LineDecoder(maxFrameSize, onFrame),
  online(ctx, type, _msgId, body) {
    if (type === LINE_CUT) {
      ctx.truncated()
      ctx.throttle.warn('line_cut', 'line longer than maxFrameSize: cut off', {
        deviceId: ctx.peer?.identity.deviceId,
        bytes: body.length,
      })
    }
    if (type === LINE || type === LINE_CUT) publishText(ctx, text(body, type === LINE_CUT))
  },
  translate: (_type, body, payload) => asText(body, payload, '\n'),
}

/** A line as text; a cut line loses the bytes of a character it split. */
function text(body: Buffer, cut: boolean): string {
  const t = body.toString('utf8')
  return cut && t.endsWith('\uFFFD') ? t.slice(0, -1) : t
}

/** Publishes a line (as JSON when it is JSON) unless the device is over its message rate. */
function publishText(ctx: HandlerContext, line: string): void {
  if (!ctx.allowMessage()) {
    ctx.throttle.warn('dial_out_rate', 'line dropped: over messageRate', {
      deviceId: ctx.peer?.identity.deviceId,
    })
    return
  }
  ctx.uplink(0, 'server', 'server', isJson(line) ? line : JSON.stringify(line))
}

const JSON_START = /^\s*[[{"\-\d]|^\s*(true|false|null)\s*$/

function isJson(line: string): boolean {
  if (!JSON_START.test(line)) return false
  try {
    JSON.parse(line)
    return true
  } catch {
    return false
  }
}
