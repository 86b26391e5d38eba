import mqtt, { type MqttClient } from 'mqtt'
import { Inbox } from './inbox.js'

export interface Received {
  topic: string
  text: string
  payload: Buffer
  retain: boolean
}

/** A real MQTT client (MQTT.js) that records what it receives on the given subscriptions. */
export class MqttWatcher {
  readonly inbox = new Inbox<Received>('mqtt messages')

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.inbox.push({ topic, text: payload.toString(), payload, retain: packet.retain })
    })
  }

  static async connect(
    url: string,
    topics: string[] = [],
    login: { username: string; password: string } | undefined = undefined,
  ): Promise<MqttWatcher> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 5000, ...login })
    const watcher = new MqttWatcher(client)
    if (topics.length > 0) await client.subscribeAsync(topics, { qos: 1 })
    return watcher
  }

  subscribe(topics: string[]): Promise<unknown> {
    return this.client.subscribeAsync(topics, { qos: 1 })
  }

  publish(topic: string, message: string | Buffer, retain = false): Promise<unknown> {
    return this.client.publishAsync(topic, message, { qos: 1, retain })
  }

  /** The next message on `topic` (optionally matching), parsed as JSON. */
  async json<T = Record<string, unknown>>(
    topic: string,
    match: (v: T) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<T> {
    const m = await this.inbox.take(
      (r) => r.topic === topic && safeMatch(r.text, match),
      timeoutMs,
      `message on ${topic}`,
    )
    return JSON.parse(m.text) as T
  }

  /** The next message on `topic`, as bytes. */
  async bytes(topic: string, timeoutMs = 5000): Promise<Buffer> {
    return (await this.inbox.take((r) => r.topic === topic, timeoutMs, `message on ${topic}`)).payload
  }

  end(): Promise<void> {
    return this.client.endAsync(true)
  }
}

function safeMatch<T>(text: string, match: (v: T) => boolean): boolean {
  try {
    return match(JSON.parse(text) as T)
  } catch {
    return false
  }
}
