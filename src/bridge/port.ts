/**
 * The MQTT side as the bridge sees it. adapters/broker-link/ implements it for an external broker,
 * adapters/aedes-port.ts for the embedded one; the bridge never imports mqtt or aedes.
 */
export type QoS = 0 | 1 | 2

export interface PublishOptions {
  readonly qos: QoS
  readonly retain?: boolean
}

/**
 * Completion of a SUBSCRIBE: an error when it could not be made (no connection), else the broker's
 * code for each topic, in order — the granted QoS (0–2), or 0x80 and above for a refusal
 * (MQTT 3.1.1 3.9.3, MQTT 5 3.9.3) — when it gave them.
 */
export type SubscribeDone = (err?: Error, codes?: readonly number[]) => void

/**
 * Returned by a message handler when the message must be made durable (the downlink store) before
 * the broker is told it has been received: the port acknowledges it (PUBACK, Aedes' callback) only
 * once `ack` is called. Acknowledgements still leave in the order the messages came.
 */
export type AckLater = (ack: () => void) => void

/**
 * Every message of every subscription. `payload` is never written to afterwards, so it may be
 * kept, read-only. `retained` is true for a retained message replayed because a subscription was
 * made, false for a live one.
 */
export type MessageHandler = (topic: string, payload: Buffer, retained: boolean) => AckLater | undefined

export interface MqttPort {
  /** Whether the connection to the broker is up right now. */
  readonly connected: boolean
  /**
   * Whether the broker keeps this connection's subscriptions across its reconnections (a session
   * that outlives it): a message may then come from a subscription the gateway no longer has.
   */
  readonly keepsSession?: boolean
  /**
   * Publishes; `done` runs once the broker accepted it (PUBACK at QoS 1, PUBCOMP at QoS 2,
   * written at QoS 0) or with the error that stopped it (a PublishRefusedError when the broker
   * refused it). While the connection is down the publish waits for it, in order.
   */
  publish(topic: string, payload: string | Buffer, options: PublishOptions, done: (err?: Error) => void): void
  subscribe(topics: readonly string[], qos: QoS, done: SubscribeDone): void
  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void
  /** See {@link MessageHandler}. */
  onMessage(handler: MessageHandler): void
  /** Each (re)connection to the broker. */
  onConnect(handler: () => void): void
}

/** The broker connection the gateway owns: an MqttPort it can wait for and close. */
export interface BrokerConnection extends MqttPort {
  /** Resolves at the first connection, or false after `timeoutMs` without one. */
  waitConnected(timeoutMs: number): Promise<boolean>
  /**
   * Disconnects: waits up to `timeoutMs` (default 0) for the broker to acknowledge what is in
   * flight; whatever is left is answered with an error.
   */
  end(timeoutMs?: number): Promise<void>
}
