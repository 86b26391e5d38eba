/**
 * The gateway's connection to an external MQTT broker, owned end to end: the socket (TCP, TLS or
 * WebSocket), MQTT 5 or 3.1.1, keepalive, reconnection and failover over a list of brokers, and
 * the order and fate of every publish across reconnections. The packets' bytes are in
 * packet-reader.ts and writer.ts, the publishes' fate in outbox.ts.
 *
 * Packets: PUBLISH and PUBACK are read and written by the link itself (one per message, the hot
 * paths); every other packet is encoded and parsed by mqtt-packet.
 *
 * Longer than 300 lines: connecting, the packets of a live connection, its loss and the move to
 * the next broker are one state machine over one connection's state; the bytes, the publishes'
 * fate, keepalive, health and the handshake are in modules of their own.
 */
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import mqttPacket, { type IConnackPacket, type Packet, type Parser } from 'mqtt-packet'
import type {
  BrokerConnection,
  MessageHandler,
  PublishOptions,
  QoS,
  SubscribeDone,
} from '../../bridge/port.js'
import { redactUrl } from '../../config/redact.js'
import { ConfigError, GatewayError } from '../../errors.js'
import { type Logger, LogThrottle } from '../../log.js'
import { InboundAcks } from './acks.js'
import { Backoff } from './backoff.js'
import { connectPacket, readConnack } from './handshake.js'
import { LinkHealth } from './health.js'
import { readPuback, readPublish, readPublishHead } from './inbound.js'
import { Keepalive } from './keepalive.js'
import { Outbox, PacketIds } from './outbox.js'
import { PacketReader } from './packet-reader.js'
import { describeReason, ReasonCode } from './reason-codes.js'
import { openTransport, type TransportTls } from './transport.js'
import { PacketWriter, type ProtocolLevel } from './writer.js'

export type ProtocolSetting = '5' | '3.1.1' | 'auto'

export interface BrokerLinkOptions {
  /** Brokers to try in turn (e.g. the nodes of a cluster); at least one. */
  readonly urls: readonly string[]
  readonly username: string | null
  readonly password: string | null
  /** Stable per gateway and connection, so that a broker can keep the gateway's session. */
  readonly clientId: string
  /** `auto`: MQTT 5 first, 3.1.1 from then on for a broker that refuses it. */
  readonly protocol: ProtocolSetting
  /** Seconds; 0 turns MQTT keepalive off (a broker's Server Keep Alive overrides it). */
  readonly keepalive: number
  /** Seconds the broker keeps the session after a disconnection; 0 = a clean session each time. */
  readonly sessionExpiry: number
  readonly tls: TransportTls
  /** First reconnection delay, ms (then doubling, jittered, up to `reconnectCapMs`). */
  readonly reconnectMs: number
  readonly reconnectCapMs: number
  /** Time for the connection and its CONNACK, ms. */
  readonly connectTimeoutMs: number
  /** Largest packet taken from the broker (announced in an MQTT 5 CONNECT), bytes. */
  readonly maxPacketSize: number
  /** The last will, published by the broker if this connection is lost. */
  readonly will?: { readonly topic: string; readonly payload: string }
  /** A message from the broker dropped unread for its size (3.1.1 brokers cannot be told the limit). */
  readonly onDropped?: (topic: string, bytes: number) => void
  /**
   * Topics whose retained message a new subscription should bring (MQTT 5 retain handling 0; all
   * others get 2, none): the presence of devices kept for, which says where they are.
   */
  readonly wantsRetained?: (topic: string) => boolean
  readonly logger: Logger
}

type State = 'idle' | 'connecting' | 'connected' | 'retrying' | 'ended'

interface PendingAck {
  readonly kind: 'suback' | 'unsuback'
  readonly done: SubscribeDone
}

const noop = (): void => {}
/** A connection that lasted this long resets the reconnection backoff. */
const STABLE_MS = 10_000
/** How long a closing connection may take to close once DISCONNECT is sent. */
const CLOSE_LINGER_MS = 1000

const PINGREQ = mqttPacket.generate({ cmd: 'pingreq' })

export class BrokerLink implements BrokerConnection {
  private readonly options: BrokerLinkOptions
  private readonly logger: Logger
  private readonly throttle: LogThrottle
  private readonly urls: readonly URL[]
  /** Per URL, the protocol level `auto` settled on (after a refusal of MQTT 5). */
  private readonly levels: (ProtocolLevel | undefined)[]
  private urlIndex = 0
  private state: State = 'idle'
  private level: ProtocolLevel = 5

  private readonly ids = new PacketIds()
  private readonly writer: PacketWriter
  private readonly outbox: Outbox
  private readonly pending = new Map<number, PendingAck>()
  /** QoS 2 messages received and not yet released (PUBREL): a resent one is not delivered twice. */
  private readonly incomingQos2 = new Set<number>()

  private stream: Duplex | undefined
  private reader: PacketReader | undefined
  private parser: Parser | undefined
  /** TCP (and TLS, WebSocket) open: the broker, not the network, ended a connection before CONNACK. */
  private opened = false
  private connectTimer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private readonly keepalive: Keepalive
  private connectedAt = 0
  private readonly backoff: Backoff
  private readonly health: LinkHealth

  private readonly connectHandlers: (() => void)[] = []
  private messageHandler: MessageHandler = () => undefined
  /** PUBACKs in order, some waiting for their message to be kept ({@link AckLater}). */
  private readonly acks: InboundAcks
  private readonly waiters = new Set<(ok: boolean) => void>()
  private ending: Promise<void> | undefined

  constructor(options: BrokerLinkOptions) {
    if (options.urls.length === 0) throw new ConfigError('mqttUrl', 'the broker link needs a URL')
    this.options = options
    this.logger = options.logger
    this.throttle = new LogThrottle(options.logger)
    this.urls = options.urls.map((u) => new URL(u))
    this.levels = this.urls.map(() => (options.protocol === '3.1.1' ? 4 : undefined))
    this.backoff = new Backoff(options.reconnectMs, options.reconnectCapMs)
    this.health = new LinkHealth(options.logger, options.clientId)
    this.keepalive = new Keepalive(
      () => this.writer.packet(PINGREQ),
      (reason) => this.lost(this.stream!, reason, 'gateway'),
    )
    this.writer = new PacketWriter(setImmediate, () => {
      this.keepalive.written()
      this.outbox.flushed()
    })
    this.acks = new InboundAcks((id) => this.writer.puback(id))
    this.outbox = new Outbox(this.writer, this.ids, (id) =>
      mqttPacket.generate({ cmd: 'pubrel', messageId: id }, { protocolVersion: this.level }),
    )
    this.connect()
  }

  get connected(): boolean {
    return this.state === 'connected'
  }

  get keepsSession(): boolean {
    return this.options.sessionExpiry > 0
  }

  /** The broker in use (or being tried), its credentials shown as `***`. */
  get url(): string {
    return redactUrl(this.urls[this.urlIndex]!.toString())
  }

  /** The MQTT version of the current (or last) connection: 5 or 4 (3.1.1). */
  get protocolLevel(): ProtocolLevel {
    return this.level
  }

  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.state === 'connected') return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        this.waiters.delete(done)
        resolve(ok)
      }
      const timer = setTimeout(() => done(false), timeoutMs)
      this.waiters.add(done)
    })
  }

  onConnect(handler: () => void): void {
    this.connectHandlers.push(handler)
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandler = handler
  }

  publish(
    topic: string,
    payload: string | Buffer,
    options: PublishOptions,
    done: (err?: Error) => void,
  ): void {
    if (this.state === 'ended') {
      process.nextTick(done, new GatewayError('HT_ERR_CLOSED', 'the broker link is closed'))
      return
    }
    this.outbox.publish(topic, payload, options.qos, options.retain ?? false, done)
  }

  subscribe(topics: readonly string[], qos: QoS, done: SubscribeDone): void {
    this.request('suback', done, (messageId) =>
      mqttPacket.generate(
        {
          cmd: 'subscribe',
          messageId,
          // MQTT 5: retained messages are not sent for a new subscription (retain handling 2):
          // the gateway never replays them to devices (PROTOCOL decision 16); but a held device's
          // presence is read (decision 33).
          subscriptions: topics.map((topic) =>
            this.level === 5
              ? { topic, qos, rh: this.options.wantsRetained?.(topic) ? 0 : 2 }
              : { topic, qos },
          ),
        },
        { protocolVersion: this.level },
      ),
    )
  }

  unsubscribe(topics: readonly string[], done: (err?: Error) => void): void {
    this.request('unsuback', done, (messageId) =>
      mqttPacket.generate(
        { cmd: 'unsubscribe', messageId, unsubscriptions: [...topics] },
        { protocolVersion: this.level },
      ),
    )
  }

  /**
   * Closes the link: waits up to `timeoutMs` for the broker to acknowledge what is in flight, then
   * sends DISCONNECT (normal: the broker does not publish the last will) and closes. Publishes not
   * acknowledged by then are answered with an error. Never takes longer than `timeoutMs` plus a
   * second for the close.
   */
  end(timeoutMs = 0): Promise<void> {
    this.ending ??= this.close(timeoutMs)
    return this.ending
  }

  private async close(timeoutMs: number): Promise<void> {
    if (this.state === 'connected' && timeoutMs > 0 && this.outbox.size > 0) {
      this.writer.flush()
      await this.settled(timeoutMs)
    }
    const stream = this.stream
    const wasConnected = this.state === 'connected'
    this.state = 'ended'
    clearTimeout(this.retryTimer)
    clearTimeout(this.connectTimer)
    this.keepalive.stop()
    for (const w of [...this.waiters]) w(false)
    if (stream !== undefined) {
      if (wasConnected) {
        this.writer.packet(mqttPacket.generate({ cmd: 'disconnect' }, { protocolVersion: this.level }))
        this.writer.flush()
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          stream.destroy()
          resolve()
        }, CLOSE_LINGER_MS)
        if (stream.closed) return resolve()
        stream.once('close', () => {
          clearTimeout(timer)
          resolve()
        })
        if (wasConnected) stream.end()
        else stream.destroy()
      })
    }
    this.teardown(new GatewayError('HT_ERR_CLOSED', 'the broker link is closed'))
    this.outbox.failAll(
      new GatewayError('HT_ERR_CLOSED', 'the broker link closed before the broker answered'),
    )
  }

  /** Resolves once nothing awaits the broker any more, or after `timeoutMs`. */
  private settled(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      this.outbox.onceEmpty(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  private request(kind: PendingAck['kind'], done: SubscribeDone, encode: (id: number) => Buffer): void {
    const id = this.state === 'connected' ? this.ids.allocate() : null
    if (id === null) {
      const why = this.state === 'connected' ? 'no packet identifier free' : 'not connected to the broker'
      process.nextTick(done, new GatewayError('HT_ERR_BROKER_UNREACHABLE', why))
      return
    }
    let packet: Buffer
    try {
      packet = encode(id)
    } catch (err) {
      // mqtt-packet refuses what MQTT cannot carry (an empty list, a topic over 65,535 bytes).
      this.ids.release(id)
      process.nextTick(done, err as Error)
      return
    }
    this.pending.set(id, { kind, done })
    this.writer.packet(packet)
  }

  // --- the connection's life ---------------------------------------------------------------

  private connect(): void {
    const index = this.urlIndex
    const url = this.urls[index]!
    this.level = this.levels[index] ?? 5
    this.state = 'connecting'
    this.opened = false
    const { stream, onOpen } = openTransport(url, this.options.tls)
    this.stream = stream
    onOpen(() => {
      if (this.stream === stream) this.opened = true
    })
    this.reader = new PacketReader(this.options.maxPacketSize, {
      onPacket: (first, buf, start, bodyStart, end) => this.onPacket(first, buf, start, bodyStart, end),
      onOversize: (first, length, head) => this.onOversize(first, length, head),
      onMalformed: (reason) => this.protocolError(`malformed packet: ${reason}`, ReasonCode.MALFORMED_PACKET),
    })
    const parser = mqttPacket.parser({ protocolVersion: this.level })
    parser.on('packet', (packet: Packet) => this.onControl(packet))
    parser.on('error', (err: Error) =>
      this.protocolError(`malformed packet: ${err.message}`, ReasonCode.MALFORMED_PACKET),
    )
    this.parser = parser
    stream.on('data', (chunk: Buffer) => {
      if (this.stream !== stream || this.state === 'ended') return
      this.keepalive.received()
      this.reader!.push(chunk)
    })
    stream.on('error', (err: NodeJS.ErrnoException) => this.lost(stream, err.code ?? err.message, 'broker'))
    stream.on('end', () => this.lost(stream, 'connection closed by the broker', 'broker'))
    stream.on('close', () => this.lost(stream, 'connection closed', 'broker'))
    stream.write(connectPacket(this.level, this.options))
    this.connectTimer = setTimeout(() => {
      this.lost(stream, `no CONNACK within ${this.options.connectTimeoutMs / 1000} s`, 'gateway')
    }, this.options.connectTimeoutMs)
    this.connectTimer.unref()
  }

  private onConnack(packet: IConnackPacket): void {
    const stream = this.stream!
    const connack = readConnack(this.level, packet)
    if (!connack.ok) {
      if (
        this.level === 5 &&
        connack.unsupported &&
        this.fallBack('it answered unsupported protocol version')
      )
        return
      this.lost(stream, connack.reason, 'gateway')
      return
    }
    clearTimeout(this.connectTimer)
    const { limits } = connack
    if (limits.maximumQos < 2)
      this.throttle.warn('max_qos', `the broker accepts QoS ${limits.maximumQos} at most`)
    if (!limits.retainAvailable)
      this.throttle.warn('no_retain', 'the broker has no retained messages: presence is not retained')
    if (!limits.sessionPresent) this.incomingQos2.clear()
    this.state = 'connected'
    this.connectedAt = performance.now()
    this.keepalive.start(connack.keepalive ?? this.options.keepalive)
    this.health.connected(this.url, this.level === 5 ? '5' : '3.1.1')
    this.writer.attach(stream)
    this.outbox.connected(limits)
    for (const w of [...this.waiters]) w(true)
    for (const handler of this.connectHandlers) handler()
  }

  /** `auto`: MQTT 5 was refused by the broker at this URL; 3.1.1 from now on, at once. */
  private fallBack(why: string): boolean {
    if (this.options.protocol !== 'auto' || this.levels[this.urlIndex] === 4) return false
    this.levels[this.urlIndex] = 4 // so this is said once per broker
    this.logger.warn(`the broker does not take MQTT 5 (${why}): using MQTT 3.1.1`, { url: this.url })
    this.teardown(new GatewayError('HT_ERR_BROKER_UNREACHABLE', 'reconnecting with MQTT 3.1.1'))
    this.connect()
    return true
  }

  /**
   * The connection is gone (or given up): what was in flight waits for the next one, and the next
   * broker of the list is tried after a backoff. `by` says who ended it: the broker (a close, a
   * reset, a DISCONNECT) or the gateway (a timeout, a refusal, a protocol error).
   */
  private lost(stream: Duplex, reason: string, by: 'broker' | 'gateway'): void {
    if (this.stream !== stream || this.state === 'ended') return
    const wasConnected = this.state === 'connected'
    const lived = wasConnected ? performance.now() - this.connectedAt : 0
    // RabbitMQ 3.10 closes an MQTT 5 CONNECT without a CONNACK.
    if (!wasConnected && by === 'broker' && this.opened && this.level === 5) {
      if (this.fallBack('it closed the connection before CONNACK')) return
    }
    this.teardown(new GatewayError('HT_ERR_BROKER_UNREACHABLE', `connection lost: ${reason}`))
    const url = this.url
    this.urlIndex = (this.urlIndex + 1) % this.urls.length
    this.health.lost(url, reason, this.urls.length > 1 ? this.url : undefined)
    if (wasConnected && by === 'broker') this.health.closedByBroker(url, lived, reason)
    if (lived >= STABLE_MS) this.backoff.reset()
    this.state = 'retrying'
    this.retryTimer = setTimeout(() => this.connect(), this.backoff.next())
    this.retryTimer.unref()
  }

  /** Drops the current connection's state; publishes wait for the next one. */
  private teardown(err: Error): void {
    clearTimeout(this.connectTimer)
    this.keepalive.stop()
    const stream = this.stream
    this.stream = undefined
    this.reader?.stop()
    this.reader = undefined
    // It may be inside its own `parse` (this runs from a packet it emitted): it must find an
    // error listener if it carries on.
    this.parser?.removeAllListeners().on('error', () => {})
    this.parser = undefined
    this.writer.detach()
    this.acks.reset()
    this.outbox.disconnected()
    if (stream !== undefined && !stream.destroyed) stream.destroy()
    const pending = [...this.pending]
    this.pending.clear()
    for (const [id, p] of pending) {
      this.ids.release(id)
      p.done(err)
    }
  }

  // --- what the broker sends ---------------------------------------------------------------

  private onPacket(first: number, buf: Buffer, start: number, bodyStart: number, end: number): void {
    const type = first >> 4
    if (type === 4 && this.state === 'connected') return this.onPuback(buf, start, bodyStart, end)
    if (type === 3 && this.state === 'connected') return this.onPublish(first, buf, bodyStart, end)
    this.parser!.parse(buf.subarray(start, end))
  }

  private onPuback(buf: Buffer, start: number, at: number, end: number): void {
    const ack = readPuback(buf, at, end)
    if (ack === undefined)
      return this.protocolError('PUBACK without a packet identifier', ReasonCode.MALFORMED_PACKET)
    // A refusal: its reason string, if any, is worth a full parse.
    const detail = ack.reason >= 0x80 && end - at > 3 ? reasonStringOf(buf.subarray(start, end)) : undefined
    if (!this.outbox.puback(ack.id, ack.reason, detail))
      this.protocolError(`PUBACK for packet identifier ${ack.id}, which awaits none`)
  }

  private onPublish(first: number, buf: Buffer, at: number, end: number): void {
    const m = readPublish(this.level, first, buf, at, end)
    if (typeof m === 'string') return this.protocolError(m, ReasonCode.MALFORMED_PACKET)
    if (m.qos === 2) {
      const again = this.incomingQos2.has(m.id)
      this.incomingQos2.add(m.id)
      this.writer.packet(
        mqttPacket.generate({ cmd: 'pubrec', messageId: m.id }, { protocolVersion: this.level }),
      )
      if (again) return // delivered already: the broker missed our PUBREC
    } else if (m.qos === 1) {
      this.acks.received(m.id, this.messageHandler(m.topic, m.payload, m.retained))
      return
    }
    // QoS 0 has nothing to acknowledge; QoS 2's PUBREC is out already (the broker holds the
    // message until our PUBCOMP, not until it is kept).
    this.messageHandler(m.topic, m.payload, m.retained)?.(noop)
  }

  /**
   * A packet announced over our size limit: its body is skipped unread. MQTT 5 brokers were told
   * the limit in CONNECT, so one over it is a protocol error. 3.1.1 has no way to say it: the
   * message is dropped, and acknowledged from its first bytes (else the broker would hold it in
   * flight, and offer it again after every reconnection).
   */
  private onOversize(first: number, length: number, head: Buffer): void {
    if (this.level === 5 || first >> 4 !== 3 || this.state !== 'connected') {
      this.protocolError(`a ${length}-byte packet, over the announced limit`, ReasonCode.PACKET_TOO_LARGE)
      return
    }
    const m = readPublishHead(first, head)
    if (m === undefined) {
      this.protocolError(`a ${length}-byte message over the size limit, with an unreadable header`)
      return
    }
    const { topic, qos, id } = m
    if (qos === 1) this.writer.puback(id)
    if (qos === 2 && !this.incomingQos2.has(id)) {
      this.incomingQos2.add(id)
      this.writer.packet(mqttPacket.generate({ cmd: 'pubrec', messageId: id }, { protocolVersion: 4 }))
    }
    this.options.onDropped?.(topic, length)
    this.throttle.warn('oversize', 'message from the broker dropped unread: over the size limit', {
      topic,
      bytes: length,
      limit: this.options.maxPacketSize,
    })
  }

  private onControl(packet: Packet): void {
    if (this.state === 'connecting') {
      if (packet.cmd === 'connack') return this.onConnack(packet)
      return this.protocolError(`${packet.cmd.toUpperCase()} before CONNACK`, ReasonCode.PROTOCOL_ERROR)
    }
    switch (packet.cmd) {
      case 'suback':
      case 'unsuback': {
        const id = packet.messageId ?? 0
        const p = this.pending.get(id)
        if (p === undefined || p.kind !== packet.cmd)
          return this.protocolError(`${packet.cmd.toUpperCase()} for unknown packet identifier ${id}`)
        this.pending.delete(id)
        this.ids.release(id)
        // 3.1.1 UNSUBACK has no codes; a 3.1.1 SUBACK's are the granted QoS or 0x80 (3.9.3).
        return p.done(undefined, packet.cmd === 'suback' ? (packet.granted as number[]) : undefined)
      }
      case 'pubrec':
        if (
          !this.outbox.pubrec(packet.messageId ?? 0, packet.reasonCode ?? 0, packet.properties?.reasonString)
        )
          this.protocolError(`PUBREC for packet identifier ${packet.messageId}, which awaits none`)
        return
      case 'pubcomp':
        if (!this.outbox.pubcomp(packet.messageId ?? 0, packet.reasonCode ?? 0))
          this.protocolError(`PUBCOMP for packet identifier ${packet.messageId}, which awaits none`)
        return
      case 'pubrel':
        this.incomingQos2.delete(packet.messageId ?? 0)
        this.writer.packet(
          mqttPacket.generate(
            { cmd: 'pubcomp', messageId: packet.messageId ?? 0 },
            { protocolVersion: this.level },
          ),
        )
        return
      case 'pingresp':
        return
      case 'disconnect': {
        const reason = describeReason(packet.reasonCode ?? 0)
        const detail = packet.properties?.reasonString
        return this.lost(
          this.stream!,
          `the broker sent DISCONNECT: ${reason}${detail ? ` (${detail})` : ''}`,
          'broker',
        )
      }
      default:
        return this.protocolError(`unexpected ${packet.cmd.toUpperCase()} from the broker`)
    }
  }

  /**
   * The broker broke the protocol: said once per kind (rate-limited), and the connection is
   * dropped (with an MQTT 5 DISCONNECT saying why) and made again.
   */
  private protocolError(what: string, reason: number = ReasonCode.PROTOCOL_ERROR): void {
    const stream = this.stream
    if (stream === undefined) return
    this.throttle.warn(`protocol_${what}`, 'broker protocol error: reconnecting', {
      url: this.url,
      error: what,
    })
    if (this.level === 5 && this.state === 'connected' && reason >= 0x80) {
      this.writer.packet(
        mqttPacket.generate({ cmd: 'disconnect', reasonCode: reason }, { protocolVersion: 5 }),
      )
      this.writer.flush()
    }
    this.lost(stream, `protocol error: ${what}`, 'gateway')
  }
}

/** The reason string of an MQTT 5 acknowledgement, parsed by mqtt-packet. */
function reasonStringOf(packet: Buffer): string | undefined {
  let text: string | undefined
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p: Packet) => {
    if ('properties' in p) text = (p.properties as { reasonString?: string } | undefined)?.reasonString
  })
  parser.on('error', () => {})
  parser.parse(packet)
  return text
}
