/**
 * Golden frames used by the firmware tests, copied from the contract's
 * vectors.json (hex; all multi-byte fields big-endian).
 */
export const VECTORS = {
  /** [HT-2.1] LOGIN, msg_id 1, body = raw token 'tok-1' */
  login_raw_token: '1d00010005746f6b2d31',
  /** [HT-2.2] LOGIN with {"token":"tok-2","device_id":"dev-2"} */
  login_json_form: '1d000100257b22746f6b656e223a22746f6b2d32222c226465766963655f6964223a226465762d32227d',
  /** [HT-2.1/HT-3.2] login reply: length 1, status byte 200 */
  login_ok: '0000010001c8',
  /** [HT-3.2] login reply: status byte 9 (INVALID_TOKEN) */
  login_invalid_token: '000001000109',
  /** [HT-2.3/HT-2.4] the first message after login, msg_id 1 */
  json_to_server:
    '1e000100347b227461726765744964223a22736572766572222c227061796c6f6164223a7b2274656d7065726174757265223a32352e367d7d',
  /** [HT-2.7] success: RESPONSE, length 0 */
  ack_ok: '0000010000',
  /** [HT-2.7] error: status 11 in the length field, no body */
  ack_illegal_body: '000002000b',
  /** [HT-5.2] JSON_MESSAGE from the gateway */
  downlink:
    '1e000100567b2266726f6d223a22736572766572222c227061796c6f6164223a7b22636f6d6d616e64223a22636f6e74726f6c222c22646576696365223a2272656c61795f31222c22616374696f6e223a22746f67676c65227d7d',
  /** [HT-2.5] the device's ack of that downlink */
  device_ack_of_downlink: '0000010000',
  /** [HT-2.4] BROADCAST from a device, msg_id 4 */
  broadcast_from_device:
    '320004004d7b227461726765744964223a2262726f616463617374222c227061796c6f6164223a7b226e6f74696669636174696f6e223a2253797374656d2075706461746520617661696c61626c65227d7d',
  /** [HT-5.3] BROADCAST delivered to a device */
  broadcast_to_device:
    '32000200457b2266726f6d223a226465762d31222c227061796c6f6164223a7b226e6f74696669636174696f6e223a2253797374656d2075706461746520617661696c61626c65227d7d',
} as const

export function hex(v: keyof typeof VECTORS): Buffer {
  return Buffer.from(VECTORS[v], 'hex')
}
