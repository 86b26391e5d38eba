/**
 * Errors with stable codes. Tests and callers match on `code`, never on message text
 * (the pattern of undici's lib/core/errors.js).
 */
export type GatewayErrorCode =
  | 'HT_ERR_FRAME_TOO_LARGE'
  | 'HT_ERR_CONFIG'
  | 'HT_ERR_LISTEN'
  | 'HT_ERR_BROKER_UNREACHABLE'
  | 'HT_ERR_PUBLISH_REFUSED'
  | 'HT_ERR_CLOSED'
  | 'HT_ERR_TOPIC_TEMPLATE'
  /** The downlink store (dataDir) cannot be opened or written. */
  | 'HT_ERR_STORE'
  /** A primary's workers (`workers`) could not do what was asked: none running, or one failed. */
  | 'HT_ERR_WORKER'
  /** A state the code rules out was reached: a bug, not bad input. */
  | 'HT_ERR_INTERNAL'

export class GatewayError extends Error {
  readonly code: GatewayErrorCode

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'GatewayError'
    this.code = code
  }
}

/** A configuration problem; `key` is the dotted path of the offending setting. */
export class ConfigError extends GatewayError {
  readonly key: string

  constructor(key: string, message: string) {
    super('HT_ERR_CONFIG', `${key}: ${message}`)
    this.name = 'ConfigError'
    this.key = key
  }
}

/**
 * The broker refused a publish (an MQTT 5 PUBACK or PUBREC reason code of 0x80 or more), or the
 * publish cannot be sent to it (larger than it accepts). `reasonCode` is the MQTT 5 reason code.
 */
export class PublishRefusedError extends GatewayError {
  readonly reasonCode: number
  readonly topic: string

  constructor(reasonCode: number, topic: string, message: string) {
    super('HT_ERR_PUBLISH_REFUSED', message)
    this.name = 'PublishRefusedError'
    this.reasonCode = reasonCode
    this.topic = topic
  }
}
