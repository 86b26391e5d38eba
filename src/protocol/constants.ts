/**
 * Command and status numbers of HyperTCP ([HT-1.2]). The same numbers live in
 * firmware/src/HyperTCPProtocol.h; change both or neither.
 */

export const HEADER_SIZE = 5 // [HT-1.1] type u8, msg_id u16 BE, length u16 BE

/** The largest body the 16-bit length field can announce ([HT-1.3]). */
export const MAX_BODY_LIMIT = 0xffff

export const Cmd = {
  RESPONSE: 0,
  PING: 6,
  LOGIN: 29,
  JSON_MESSAGE: 30,
  REDIRECT: 41,
  BROADCAST: 50,
} as const
export type Cmd = (typeof Cmd)[keyof typeof Cmd]

export const Status = {
  SUCCESS: 200,
  QUOTA_LIMIT: 1,
  ILLEGAL_COMMAND: 2,
  NOT_AUTHENTICATED: 5,
  NOT_ALLOWED: 6,
  INVALID_TOKEN: 9,
  ILLEGAL_COMMAND_BODY: 11,
  TIMEOUT: 16,
  SERVER_ERROR: 19,
} as const
export type Status = (typeof Status)[keyof typeof Status]

const cmdNames = new Map<number, string>(Object.entries(Cmd).map(([k, v]) => [v, k]))
const statusNames = new Map<number, string>(Object.entries(Status).map(([k, v]) => [v, k]))

/** `JSON_MESSAGE`, or `CMD_77` for a number the protocol does not define (for logs). */
export function cmdName(type: number): string {
  return cmdNames.get(type) ?? `CMD_${type}`
}

export function statusName(status: number): string {
  return statusNames.get(status) ?? `STATUS_${status}`
}
