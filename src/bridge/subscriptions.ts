import type { MqttPort, QoS } from './port.js'

interface TopicState {
  /** What the bridge wants. */
  wanted: boolean
  /** What the broker has confirmed. */
  subscribed: boolean
  /** A SUBSCRIBE or UNSUBSCRIBE of this topic is awaiting the broker. */
  busy: boolean
  /** `add` calls waiting for this topic to be subscribed. */
  waiters: ((err?: Error) => void)[]
}

/** Topics per SUBSCRIBE packet when restoring after a reconnection. */
const RESTORE_BATCH = 500

/**
 * Keeps the broker's subscriptions equal to what the bridge wants, with at most one SUBSCRIBE or
 * UNSUBSCRIBE of a topic awaiting the broker at a time. A device that leaves and comes back
 * quickly would otherwise put an UNSUBSCRIBE and a SUBSCRIBE of its down topic in flight
 * together, and brokers that handle the packets of one read concurrently (Aedes,
 * moscajs/aedes#469) can apply them in the wrong order and leave it unsubscribed.
 */
export class Subscriptions {
  private readonly topics = new Map<string, TopicState>()

  constructor(
    private readonly mqtt: MqttPort,
    private readonly qos: QoS,
  ) {}

  /** Topics wanted right now (for tests and stats). */
  get size(): number {
    let n = 0
    for (const st of this.topics.values()) if (st.wanted) n++
    return n
  }

  /** Resolves once every topic is subscribed by a SUBSCRIBE issued after any pending UNSUBSCRIBE. */
  add(topics: readonly string[]): Promise<void> {
    const waits: Promise<void>[] = []
    const toSubscribe: string[] = []
    for (const topic of topics) {
      const st = this.state(topic)
      st.wanted = true
      if (st.subscribed && !st.busy) continue
      waits.push(new Promise((resolve, reject) => st.waiters.push((err) => (err ? reject(err) : resolve()))))
      if (!st.busy) toSubscribe.push(topic)
    }
    if (toSubscribe.length > 0) this.subscribe(toSubscribe)
    return Promise.all(waits).then(() => undefined)
  }

  /** No longer wanted: unsubscribed once whatever is in flight for it has settled. */
  remove(topics: readonly string[]): void {
    const toUnsubscribe: string[] = []
    for (const topic of topics) {
      const st = this.topics.get(topic)
      if (st === undefined) continue
      st.wanted = false
      if (st.busy) continue
      if (st.subscribed) toUnsubscribe.push(topic)
      else this.topics.delete(topic)
    }
    if (toUnsubscribe.length > 0) this.unsubscribe(toUnsubscribe)
  }

  /**
   * After a reconnection (clean session: the broker kept nothing), subscribes every wanted topic
   * again. Operations in flight at the disconnection have already failed.
   */
  restore(): void {
    const again: string[] = []
    for (const [topic, st] of this.topics) {
      st.subscribed = false
      if (!st.wanted) {
        if (!st.busy) this.topics.delete(topic)
        continue
      }
      if (!st.busy) again.push(topic)
    }
    for (let i = 0; i < again.length; i += RESTORE_BATCH) this.subscribe(again.slice(i, i + RESTORE_BATCH))
  }

  private state(topic: string): TopicState {
    let st = this.topics.get(topic)
    if (st === undefined) {
      st = { wanted: false, subscribed: false, busy: false, waiters: [] }
      this.topics.set(topic, st)
    }
    return st
  }

  private subscribe(topics: string[]): void {
    for (const t of topics) this.topics.get(t)!.busy = true
    this.mqtt.subscribe(topics, this.qos, (err) => {
      for (const t of topics) {
        const st = this.topics.get(t)!
        st.busy = false
        st.subscribed = !err
        if (err) {
          // Fail the waiters; a later `add` (or `restore`) tries again.
          for (const w of st.waiters.splice(0)) w(err)
        }
        this.reconcile(t, st)
      }
    })
  }

  private unsubscribe(topics: string[]): void {
    for (const t of topics) this.topics.get(t)!.busy = true
    this.mqtt.unsubscribe(topics, () => {
      for (const t of topics) {
        const st = this.topics.get(t)!
        st.busy = false
        st.subscribed = false // after a failure too: the connection (and its session) is gone
        this.reconcile(t, st)
      }
    })
  }

  /** After an operation settled: resolve waiters, or issue what is now needed. */
  private reconcile(topic: string, st: TopicState): void {
    if (st.wanted && st.subscribed) {
      for (const w of st.waiters.splice(0)) w()
    } else if (st.wanted && st.waiters.length > 0) {
      this.subscribe([topic])
    } else if (!st.wanted && st.subscribed) {
      this.unsubscribe([topic])
    } else if (!st.wanted) {
      this.topics.delete(topic)
    }
  }
}
