import type { Aedes, AedesPublishPacket } from 'aedes'
import type {
  AckLater,
  MessageHandler,
  MqttPort,
  PublishOptions,
  QoS,
  SubscribeDone,
} from '../bridge/port.js'

type Deliver = (packet: AedesPublishPacket, callback: () => void) => void

/**
 * The embedded broker as an {@link MqttPort}, in-process: publishes go straight into Aedes'
 * publish pipeline (retained store, offline queues, routing — what a client's PUBLISH goes
 * through; the callback runs where Aedes would send the PUBACK), and subscriptions are Aedes'
 * in-memory routes. No MQTT encoding, no TCP hop, no client session: the standalone gateway does
 * per message a fraction of the work, and a subscription costs no scan of retained messages
 * (which made each login slower as devices grew).
 */
export class AedesPort implements MqttPort {
  readonly connected = true
  /**
   * Aedes (1.2, moscajs/aedes#994) drops, for each subscriber, a message numbered lower than one
   * it already delivered to it, taking it for a duplicate: a cluster safeguard, keyed by the
   * packet's `brokerId` and `brokerCounter`. Numbers are given at publish, but QoS 1/2 and
   * retained messages reach subscribers after asynchronous steps that QoS 0 ones skip, so a QoS 0
   * message published right after a QoS 1 one overtakes it and the QoS 1 one is dropped — for any
   * subscriber of both topics, e.g. `hypertcp/#` seeing takeovers and uplinks. The gateway's
   * publishes are therefore numbered per path (QoS 0 or not, retained or not), under a broker id
   * of their own: within a path they arrive in the order they are numbered.
   */
  private readonly paths: { readonly brokerId: string; counter: number }[]
  private handler: MessageHandler = () => undefined
  /** Payloads of clients' messages handed to the handler already, before Aedes acknowledged them. */
  private readonly early = new WeakSet<Buffer>()
  private readonly deliver: Deliver = (packet, callback) => {
    // Every delivery here matches a live route: never a replay of a retained message.
    const payload = packet.payload as Buffer
    if (this.early.delete(payload)) return callback()
    // Published in-process (by the gateway): Aedes' caller waits for this callback.
    const later = this.handler(packet.topic, payload, false)
    if (later === undefined) callback()
    else later(callback)
  }

  /**
   * `auth`: a client's message reaches the handler from Aedes' authorization, which comes before
   * Aedes acknowledges a QoS 1 publish; so a message the handler keeps is acknowledged to its
   * publisher once written ({@link AckLater}), not before.
   */
  constructor(
    private readonly aedes: Aedes,
    auth?: { intercept: ((topic: string, payload: Buffer) => AckLater | undefined) | undefined },
  ) {
    if (auth !== undefined) {
      auth.intercept = (topic, payload) => {
        this.early.add(payload)
        return this.handler(topic, payload, false)
      }
    }
    this.paths = ['qos0', 'qos0-retained', 'qos1', 'qos1-retained'].map((path) => ({
      brokerId: `${aedes.id}/gateway/${path}`,
      counter: 0,
    }))
  }

  publish(
    topic: string,
    payload: string | Buffer,
    options: PublishOptions,
    done: (err?: Error) => void,
  ): void {
    const retain = options.retain ?? false
    const path = this.paths[(options.qos === 0 ? 0 : 2) + (retain ? 1 : 0)]!
    this.aedes.publish(
      {
        cmd: 'publish',
        topic,
        payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
        qos: options.qos,
        retain,
        dup: false,
        brokerId: path.brokerId,
        brokerCounter: ++path.counter,
      } as AedesPublishPacket,
      (err) => done(err ?? undefined),
    )
  }

  subscribe(topics: readonly string[], _qos: QoS, done: SubscribeDone): void {
    this.each(
      topics,
      (topic, cb) => this.aedes.subscribe(topic, this.deliver, cb),
      () => done(),
    )
  }

  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void {
    this.each(topics, (topic, cb) => this.aedes.unsubscribe(topic, this.deliver, cb), done)
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler
  }

  /** Always connected: runs the handler once, on the next turn (as a first connection would). */
  onConnect(handler: () => void): void {
    setImmediate(handler)
  }

  waitConnected(): Promise<boolean> {
    return Promise.resolve(true)
  }

  /** Nothing to disconnect: the broker closes with the gateway. */
  end(): Promise<void> {
    return Promise.resolve()
  }

  private each(
    topics: readonly string[],
    op: (topic: string, cb: () => void) => void,
    done: (err?: Error) => void,
  ) {
    let left = topics.length
    if (left === 0) return done()
    for (const topic of topics) op(topic, () => --left === 0 && done())
  }
}
