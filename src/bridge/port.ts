/**
 * The MQTT side as the bridge sees it. adapters/mqtt-client.ts implements it with MQTT.js; the
 * bridge never imports mqtt or aedes.
 */
export type QoS = 0 | 1 | 2

export interface PublishOptions {
  readonly qos: QoS
  readonly retain?: boolean
}

export interface MqttPort {
  /** Whether the connection to the broker is up right now. */
  readonly connected: boolean
  /**
   * Publishes; `done` runs once the broker accepted it (PUBACK at QoS 1, PUBCOMP at QoS 2,
   * written at QoS 0) or with the error that stopped it.
   */
  publish(topic: string, payload: string | Buffer, options: PublishOptions, done: (err?: Error) => void): void
  subscribe(topics: readonly string[], qos: QoS, done: (err?: Error) => void): void
  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void
  /**
   * Every message of every subscription. `payload` is not reused by the client (MQTT.js parses
   * into fresh buffers), so it may be kept, read-only. `retained` is true for a retained message
   * replayed because a subscription was made, false for a live one.
   */
  onMessage(handler: (topic: string, payload: Buffer, retained: boolean) => void): void
  /** Each (re)connection to the broker. */
  onConnect(handler: () => void): void
}

/** The broker connection the gateway owns: an MqttPort it can wait for and close. */
export interface BrokerConnection extends MqttPort {
  /** Resolves at the first connection, or false after `timeoutMs` without one. */
  waitConnected(timeoutMs: number): Promise<boolean>
  /** Disconnects (flushing what is pending unless `force`). */
  end(force?: boolean): Promise<void>
}
