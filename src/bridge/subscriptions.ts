import type { MqttPort, QoS } from './port.js'

/** Settles an `add`'s wait for one topic: an error, or whether the broker refused the topic. */
type Waiter = (err: Error | undefined, refused: boolean) => void

interface TopicState {
  /** What the bridge wants. */
  wanted: boolean
  /** What the broker has confirmed. */
  subscribed: boolean
  /** A SUBSCRIBE or UNSUBSCRIBE of this topic is awaiting the broker. */
  busy: boolean
  /** `add` calls waiting for this topic to be subscribed. */
  waiters: Waiter[]
}

const NONE: readonly string[] = []

/** Most topics in one SUBSCRIBE or UNSUBSCRIBE packet. */
const MAX_TOPICS_PER_PACKET = 500

/**
 * Keeps the broker's subscriptions equal to what the bridge wants, with at most one SUBSCRIBE or
 * UNSUBSCRIBE of a topic awaiting the broker at a time. A device that leaves and comes back
 * quickly would otherwise put an UNSUBSCRIBE and a SUBSCRIBE of its down topic in flight
 * together, and brokers that handle the packets of one read concurrently (Aedes,
 * moscajs/aedes#469) can apply them in the wrong order and leave it unsubscribed.
 *
 * `add` and `remove` only record what is wanted; {@link flush} sends what changed since the last
 * flush in one SUBSCRIBE and one UNSUBSCRIBE, so many logins cost the broker one packet and one
 * acknowledgement instead of one each.
 */
export class Subscriptions {
  private readonly topics = new Map<string, TopicState>()
  /** Topics whose wanted state changed since the last flush. */
  private dirty = new Set<string>()

  /**
   * @param onRefused told of each topic the broker refuses (SUBACK 0x80 and above), with its code
   */
  constructor(
    private readonly mqtt: MqttPort,
    private readonly qos: QoS,
    private readonly onRefused: (topic: string, code: number) => void = () => {},
  ) {}

  /** Topics wanted right now (for tests and stats). */
  get size(): number {
    let n = 0
    for (const st of this.topics.values()) if (st.wanted) n++
    return n
  }

  /**
   * Wants the topics; resolves once the broker answered a SUBSCRIBE of each, issued after any
   * pending UNSUBSCRIBE of it, with the topics it refused (none, usually). Rejects when a SUBSCRIBE
   * could not be made (the connection is down). Sent at the next {@link flush}.
   */
  add(topics: readonly string[]): Promise<readonly string[]> {
    const waits: Promise<string | undefined>[] = []
    for (const topic of topics) {
      const st = this.state(topic)
      st.wanted = true
      if (st.subscribed && !st.busy) continue
      waits.push(
        new Promise((resolve, reject) =>
          st.waiters.push((err, refused) => (err ? reject(err) : resolve(refused ? topic : undefined))),
        ),
      )
      this.dirty.add(topic)
    }
    if (waits.length === 0) return Promise.resolve(NONE)
    return Promise.all(waits).then((results) => {
      const refused = results.filter((t) => t !== undefined)
      return refused.length === 0 ? NONE : refused
    })
  }

  /** No longer wanted: unsubscribed at the next {@link flush}, once what is in flight for it has settled. */
  remove(topics: readonly string[]): void {
    for (const topic of topics) {
      const st = this.topics.get(topic)
      if (st === undefined) continue
      st.wanted = false
      this.dirty.add(topic)
    }
  }

  /**
   * A message came on `topic`, which is neither wanted nor being changed: a subscription the
   * broker kept in its session from before (a run that ended uncleanly, a topic removed while the
   * connection was down). Unsubscribed at the next {@link flush}; true when it was such a one.
   */
  stray(topic: string): boolean {
    if (this.topics.has(topic)) return false
    this.state(topic).subscribed = true
    this.dirty.add(topic)
    return true
  }

  /** Sends what `add` and `remove` changed: at most one SUBSCRIBE and one UNSUBSCRIBE per 500 topics. */
  flush(): void {
    if (this.dirty.size === 0) return
    const toSubscribe: string[] = []
    const toUnsubscribe: string[] = []
    for (const topic of this.dirty) {
      const st = this.topics.get(topic)
      // Busy: settled later by reconcile, which then issues what is still needed.
      if (st === undefined || st.busy) continue
      // Wanted and subscribed: removed and wanted again in between, nothing to send.
      if (st.wanted && !st.subscribed) toSubscribe.push(topic)
      else if (!st.wanted && st.subscribed) toUnsubscribe.push(topic)
      else if (!st.wanted) this.forget(topic, st)
    }
    this.dirty = new Set()
    if (toUnsubscribe.length > 0) this.inChunks(toUnsubscribe, (chunk) => this.unsubscribe(chunk))
    if (toSubscribe.length > 0) this.inChunks(toSubscribe, (chunk) => this.subscribe(chunk))
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
    this.dirty.clear()
    this.inChunks(again, (chunk) => this.subscribe(chunk))
  }

  private state(topic: string): TopicState {
    let st = this.topics.get(topic)
    if (st === undefined) {
      st = { wanted: false, subscribed: false, busy: false, waiters: [] }
      this.topics.set(topic, st)
    }
    return st
  }

  private inChunks(topics: string[], send: (chunk: string[]) => void): void {
    if (topics.length === 0) return // MQTT has no empty SUBSCRIBE (3.8.3-3)
    if (topics.length <= MAX_TOPICS_PER_PACKET) return send(topics)
    for (let i = 0; i < topics.length; i += MAX_TOPICS_PER_PACKET)
      send(topics.slice(i, i + MAX_TOPICS_PER_PACKET))
  }

  private subscribe(topics: string[]): void {
    for (const t of topics) this.topics.get(t)!.busy = true
    this.mqtt.subscribe(topics, this.qos, (err, codes) => {
      topics.forEach((t, i) => {
        const st = this.topics.get(t)!
        const code = codes?.[i] ?? 0
        st.busy = false
        st.subscribed = !err && code < 0x80
        if (err) {
          // Fail the waiters; a later `add` (or `restore`) tries again.
          for (const w of st.waiters.splice(0)) w(err, false)
        } else if (code >= 0x80) {
          this.onRefused(t, code)
          // Answered: the broker said no. A later `add` (or `restore`) asks again.
          for (const w of st.waiters.splice(0)) w(undefined, true)
        }
        this.reconcile(t, st)
      })
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
      for (const w of st.waiters.splice(0)) w(undefined, false)
    } else if (st.wanted && st.waiters.length > 0) {
      this.subscribe([topic])
    } else if (!st.wanted && st.subscribed) {
      this.settleGivenUp(st)
      this.unsubscribe([topic])
    } else if (!st.wanted) {
      this.forget(topic, st)
    }
  }

  /** A topic no longer wanted and not subscribed: dropped, and whoever waited for it is answered. */
  private forget(topic: string, st: TopicState): void {
    this.settleGivenUp(st)
    this.topics.delete(topic)
  }

  /**
   * An `add` whose topic was removed before the broker confirmed it (a held device found to be
   * elsewhere while its subscription was in flight): the wait is over, nothing was refused.
   */
  private settleGivenUp(st: TopicState): void {
    for (const w of st.waiters.splice(0)) w(undefined, false)
  }
}
