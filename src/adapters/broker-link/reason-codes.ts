import { PublishRefusedError } from '../../errors.js'

/** MQTT 5 reason codes the link acts on (MQTT 5 2.4); any code ≥ 0x80 is a failure. */
export const ReasonCode = {
  SUCCESS: 0x00,
  NO_MATCHING_SUBSCRIBERS: 0x10,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  NOT_AUTHORIZED: 0x87,
  SESSION_TAKEN_OVER: 0x8e,
  PACKET_IDENTIFIER_NOT_FOUND: 0x92,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  PACKET_TOO_LARGE: 0x95,
  QUOTA_EXCEEDED: 0x97,
} as const

const NAMES: Record<number, string> = {
  0: 'success',
  4: 'disconnect with will message',
  16: 'no matching subscribers',
  128: 'unspecified error',
  129: 'malformed packet',
  130: 'protocol error',
  131: 'implementation specific error',
  132: 'unsupported protocol version',
  133: 'client identifier not valid',
  134: 'bad user name or password',
  135: 'not authorized',
  136: 'server unavailable',
  137: 'server busy',
  138: 'banned',
  139: 'server shutting down',
  140: 'bad authentication method',
  141: 'keep alive timeout',
  142: 'session taken over',
  143: 'topic filter invalid',
  144: 'topic name invalid',
  145: 'packet identifier in use',
  146: 'packet identifier not found',
  147: 'receive maximum exceeded',
  148: 'topic alias invalid',
  149: 'packet too large',
  150: 'message rate too high',
  151: 'quota exceeded',
  152: 'administrative action',
  153: 'payload format invalid',
  154: 'retain not supported',
  155: 'QoS not supported',
  156: 'use another server',
  157: 'server moved',
  158: 'shared subscriptions not supported',
  159: 'connection rate exceeded',
  160: 'maximum connect time',
  161: 'subscription identifiers not supported',
  162: 'wildcard subscriptions not supported',
}

/** MQTT 3.1.1 CONNACK return codes (3.2.2.3). */
const CONNACK_3: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
}

/** `0x87 not authorized`, for logs. */
export function describeReason(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')} ${NAMES[code] ?? 'unknown reason'}`
}

/** A CONNACK's refusal, for logs, in the words of the protocol level that sent it. */
export function describeConnack(level: 4 | 5, code: number): string {
  return level === 5 ? describeReason(code) : `${code} ${CONNACK_3[code] ?? 'unknown return code'}`
}

/** A {@link PublishRefusedError} whose message names the reason. */
export function publishRefused(reasonCode: number, topic: string, detail?: string): PublishRefusedError {
  const why = `${describeReason(reasonCode)}${detail ? ` (${detail})` : ''}`
  return new PublishRefusedError(reasonCode, topic, `broker refused the publish to ${topic}: ${why}`)
}
