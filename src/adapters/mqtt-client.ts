import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient, type StreamBuilder } from 'mqtt'
import type { MqttPort, PublishOptions, QoS } from '../bridge/port.js'
import { ConfigError } from '../errors.js'
import type { Logger } from '../log.js'
import { tapPubacks } from './puback-tap.js'
import { MessageIds, PublishPipeline } from './publish-pipeline.js'

export interface MqttClientOptions {
  readonly url: string
  readonly username: string | null
  readonly password: string | null
  readonly clientId: string
  readonly ca: string | null
  readonly cert: string | null
  readonly key: string | null
  readonly rejectUnauthorized: boolean
  readonly reconnectPeriodMs: number
  /** Last will: the broker publishes it if this connection is lost ([HT-5.4]). */
  readonly will: { readonly topic: string; readonly payload: string }
  readonly logger: Logger
}

/**
 * The gateway's MQTT connection (MQTT.js), as an {@link MqttPort}. Reconnects by itself (the
 * bridge then re-subscribes what it needs). A failure to reach the broker is logged once per
 * outage (then at debug), never thrown at the caller.
 */
export class MqttClientPort implements MqttPort {
  readonly client: MqttClient
  private readonly logger: Logger
  private readonly url: string
  private outage = false
  /** The stream corked until the end of this turn, if any. */
  private corked: { uncork(): void } | undefined
  /** QoS 0 and 1 publishes written by the gateway itself (publish-pipeline.ts). */
  private readonly pipeline: PublishPipeline
  /** Publishes handed to MQTT.js and not yet answered: while any is, the pipeline stands aside. */
  private viaClient = 0
  /** Set by `end`: from then on publishes go to MQTT.js, which refuses them once disconnecting. */
  private ending = false
  private drained: (() => void) | undefined

  constructor(options: MqttClientOptions) {
    this.logger = options.logger
    this.url = redact(options.url)
    const messageIds = new MessageIds()
    const opts: IClientOptions = {
      messageIdProvider: messageIds,
      clientId: options.clientId,
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      reconnectPeriod: options.reconnectPeriodMs,
      connectTimeout: 10_000,
      // The bridge re-subscribes on reconnect itself: MQTT.js's bookkeeping would skip a
      // SUBSCRIBE issued while an UNSUBSCRIBE of the same topic is still queued.
      resubscribe: false,
      will: { topic: options.will.topic, payload: Buffer.from(options.will.payload), qos: 1, retain: true },
      rejectUnauthorized: options.rejectUnauthorized,
      // Per-packet costs the profile showed: debug formatting, and re-arming the ping timer on
      // every packet (with traffic flowing, one PINGREQ per keepalive period is plenty).
      log: () => {},
      reschedulePings: false,
    }
    if (options.username !== null) opts.username = options.username
    if (options.password !== null) opts.password = options.password
    if (options.ca !== null) opts.ca = readPem('mqttCa', options.ca)
    if (options.cert !== null) opts.cert = readPem('mqttCert', options.cert)
    if (options.key !== null) opts.key = readPem('mqttKey', options.key)
    this.client = mqtt.connect(options.url, opts)
    // The PUBACKs of the pipeline's publishes are taken from each connection's bytes before
    // MQTT.js parses them (puback-tap.ts). `connect` built the first stream (nothing is read from
    // it before this turn ends); MQTT.js builds one per reconnection with its `streamBuilder`,
    // which its typings keep private. (Not `manualConnect`: with it, MQTT.js treats an ended
    // client as reusable and lets a late CONNACK publish into its closed stores.)
    const acknowledge = (id: number) => this.acknowledged(id)
    tapPubacks(this.client.stream, acknowledge)
    const client = this.client as unknown as { streamBuilder: StreamBuilder }
    const build = client.streamBuilder
    client.streamBuilder = (c) => {
      const stream = build(c)
      tapPubacks(stream, acknowledge)
      return stream
    }
    this.pipeline = new PublishPipeline(
      messageIds,
      () => {
        const stream = this.client.stream
        return stream?.writable ? stream : undefined
      },
      setImmediate,
    )
    // A PUBACK the tap left to MQTT.js (one after another packet in the same read).
    this.client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) this.acknowledged(packet.messageId)
    })
    // The connection is lost: what awaits a PUBACK (or, at QoS 0, was never written) goes to
    // MQTT.js, oldest first, and is published again once the broker is back (MQTT.js's offline
    // store), as MQTT.js does with its own.
    this.client.on('close', () => {
      for (const p of this.pipeline.takeUnacknowledged())
        this.publishViaClient(p.topic, p.payload, p.qos, p.retain, p.done)
    })
    this.client.on('connect', () => {
      if (this.outage) this.logger.info('broker connection restored', { url: this.url })
      this.outage = false
    })
    this.client.on('error', (err: Error & { code?: string | number }) => this.reportOutage(err.message))
    this.client.on('offline', () => this.reportOutage('connection lost'))
  }

  /** A PUBACK arrived: completes the pipeline's publish; false if it is one of MQTT.js's own. */
  private acknowledged(id: number): boolean {
    const done = this.pipeline.acknowledge(id)
    if (done === undefined) return false
    done()
    if (this.pipeline.inflight === 0) this.drained?.()
    return true
  }

  private reportOutage(reason: string): void {
    if (this.outage) {
      this.logger.debug('broker still unreachable', { url: this.url, reason })
      return
    }
    this.outage = true
    this.logger.error('broker unreachable, retrying', { url: this.url, reason })
  }

  /** Resolves at the first successful connection, or false after `timeoutMs` without one. */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.client.connected) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        this.client.removeListener('connect', onConnect)
        resolve(ok)
      }
      const onConnect = () => done(true)
      const timer = setTimeout(() => done(false), timeoutMs)
      this.client.on('connect', onConnect)
    })
  }

  get connected(): boolean {
    return this.client.connected
  }

  publish(
    topic: string,
    payload: string | Buffer,
    options: PublishOptions,
    done: (err?: Error) => void,
  ): void {
    const retain = options.retain ?? false
    // The pipeline only while MQTT.js has no publish of its own outstanding: what MQTT.js holds
    // (offline, or being re-sent after a reconnect) goes out first, and per-device order holds.
    if (
      options.qos !== 2 &&
      this.viaClient === 0 &&
      !this.ending &&
      this.client.connected &&
      this.pipeline.publish(topic, payload, options.qos, retain, done)
    ) {
      return
    }
    this.publishViaClient(topic, payload, options.qos, retain, done)
  }

  private publishViaClient(
    topic: string,
    payload: string | Buffer,
    qos: QoS,
    retain: boolean,
    done: (err?: Error) => void,
  ): void {
    this.pipeline.flush() // what the pipeline encoded earlier leaves first
    this.corkUntilNextTurn()
    this.viaClient++
    this.client.publish(topic, payload, { qos, retain }, (err) => {
      this.viaClient--
      done(err)
    })
  }

  /**
   * Publishes of one event-loop turn (from many devices' reads) leave in one write: mqtt-packet
   * corks per packet and uncorks on the next tick, which flushes each publish on its own.
   */
  private corkUntilNextTurn(): void {
    const stream = this.client.stream
    if (this.corked !== undefined || !this.client.connected || !stream?.writable) return
    this.corked = stream
    stream.cork()
    setImmediate(() => {
      this.corked = undefined
      stream.uncork()
    })
  }

  subscribe(topics: readonly string[], qos: QoS, done: (err?: Error) => void): void {
    this.pipeline.flush() // a device's takeover announcement leaves before its subscription
    this.client.subscribe([...topics], { qos }, (err, granted) => {
      if (err) return done(err)
      const refused = granted?.find((g) => g.qos === 128)
      done(refused ? new Error(`broker refused the subscription to ${refused.topic}`) : undefined)
    })
  }

  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void {
    this.pipeline.flush() // publishes made before it leave before it
    this.client.unsubscribe([...topics], (err) => done(err ?? undefined))
  }

  onMessage(handler: (topic: string, payload: Buffer, retained: boolean) => void): void {
    // A broker sets the retain flag only on messages replayed to a new subscription (MQTT 3.1.1
    // 3.3.1.3); live deliveries carry 0 whatever the publisher set.
    this.client.on('message', (topic, payload, packet) => handler(topic, payload, packet.retain))
  }

  onConnect(handler: () => void): void {
    this.client.on('connect', handler)
  }

  /** Disconnects cleanly (no last will); pending publishes are answered first unless `force`. */
  async end(force = false): Promise<void> {
    this.ending = true
    this.pipeline.flush()
    if (!force && this.pipeline.inflight > 0 && this.client.connected) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.drained = undefined
          this.client.removeListener('close', done)
          resolve()
        }
        this.drained = done
        this.client.once('close', done)
      })
    }
    return new Promise((resolve) => this.client.end(force, {}, () => resolve()))
  }
}

function readPem(key: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/** The URL without credentials, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return url
  }
}
