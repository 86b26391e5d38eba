/**
 * Blynk's command and status numbers (the Blynk library 1.x, Blynk/BlynkProtocolDefs.h). HyperTCP
 * took its header, RESPONSE, PING, LOGIN and REDIRECT from here: those numbers are the same.
 */
export const BlynkCmd = {
  RESPONSE: 0,
  PING: 6,
  BRIDGE: 15,
  HARDWARE_SYNC: 16,
  INTERNAL: 17,
  PROPERTY: 19,
  HARDWARE: 20,
  GROUP: 21,
  HW_LOGIN: 29,
  REDIRECT: 41,
  DEBUG_PRINT: 55,
  EVENT_LOG: 64,
  EVENT_CLEAR: 65,
} as const

/** Statuses the Blynk library reads that HyperTCP does not use. */
export const BlynkStatus = {
  ALREADY_REGISTERED: 4,
} as const

/** The largest body a Blynk device reads unless it says otherwise (BLYNK_MAX_READBYTES). */
export const BLYNK_DEFAULT_BUFF_IN = 256
