/**
 * The MQTT side of the firmware integration tests: an MQTT.js client that
 * records what arrives, so a test waits for a message instead of sleeping.
 */
import mqtt, { type MqttClient } from 'mqtt'

export interface Received {
  topic: string
  payload: Buffer
  retain: boolean
}

interface Waiter {
  match: (m: Received) => boolean
  resolve: (m: Received) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

export class MqttWatcher {
  readonly received: Received[] = []
  private readonly consumed: boolean[] = []
  private readonly waiters = new Set<Waiter>()

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.received.push({ topic, payload: Buffer.from(payload), retain: packet.retain })
      this.consumed.push(false)
      const index = this.received.length - 1
      const m = this.received[index]!
      for (const w of this.waiters) {
        if (w.match(m)) {
          this.consumed[index] = true
          this.waiters.delete(w)
          clearTimeout(w.timer)
          w.resolve(m)
          return
        }
      }
    })
  }

  static async connect(url: string): Promise<MqttWatcher> {
    return new MqttWatcher(await mqtt.connectAsync(url, { reconnectPeriod: 0 }))
  }

  async subscribe(...topics: string[]): Promise<void> {
    await this.client.subscribeAsync(topics, { qos: 1 })
  }

  async publish(topic: string, payload: string): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 })
  }

  /** The first unconsumed message on `topic` matching `match` (consumed). */
  take(topic: string, match: (m: Received) => boolean = () => true, timeoutMs = 5000): Promise<Received> {
    const full = (m: Received) => m.topic === topic && match(m)
    for (let i = 0; i < this.received.length; i++) {
      if (!this.consumed[i] && full(this.received[i]!)) {
        this.consumed[i] = true
        return Promise.resolve(this.received[i]!)
      }
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        match: full,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w)
          const seen = this.received
            .slice(-8)
            .map((m) => `${m.topic} ${m.payload.toString()}`)
            .join('\n  ')
          reject(
            new Error(`no message on ${topic} within ${timeoutMs} ms; last seen:\n  ${seen || '(nothing)'}`),
          )
        }, timeoutMs),
      }
      this.waiters.add(w)
    })
  }

  /** Like take(), parsing the payload as JSON. */
  async json<T = unknown>(
    topic: string,
    match: (v: T) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<T> {
    const parse = (m: Received): T | undefined => {
      try {
        return JSON.parse(m.payload.toString()) as T
      } catch {
        return undefined
      }
    }
    const m = await this.take(
      topic,
      (r) => {
        const v = parse(r)
        return v !== undefined && match(v)
      },
      timeoutMs,
    )
    return parse(m) as T
  }

  async close(): Promise<void> {
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(new Error('watcher closed'))
    }
    this.waiters.clear()
    await this.client.endAsync(true)
  }
}
