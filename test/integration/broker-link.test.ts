import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import { BrokerLink, type BrokerLinkOptions } from '../../src/adapters/broker-link/link.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { externalAedes } from '../helpers/aedes.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { CliProcess, requireBuild } from '../helpers/cli.js'
import { FakeBroker } from '../helpers/fake-broker.js'
import { startGateway } from '../helpers/gateway.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

/** A BrokerLink with test defaults: quick reconnections, a logger whose lines the test reads. */
function link(urls: string[], options: Partial<BrokerLinkOptions> = {}) {
  const { logger, lines } = captureLogger()
  const l = new BrokerLink({
    urls,
    username: null,
    password: null,
    clientId: `link-test-${process.pid}`,
    protocol: 'auto',
    keepalive: 30,
    sessionExpiry: 0,
    tls: { ca: undefined, cert: undefined, key: undefined, rejectUnauthorized: true },
    reconnectMs: 20,
    reconnectCapMs: 100,
    connectTimeoutMs: 2000,
    maxPacketSize: 4096,
    logger,
    ...options,
  })
  return { link: l, lines }
}

/** Publishes through the link and resolves to the error it was answered with, or undefined. */
function publish(l: BrokerLink, topic: string, payload: string, qos: 0 | 1 = 1): Promise<Error | undefined> {
  return new Promise((resolve) => l.publish(topic, payload, { qos }, resolve))
}

/** `New client connected from … as <id> (p5, c1, k30).` lines of Mosquitto's log, by client id. */
async function mosquittoClient(m: Mosquitto, clientId: string): Promise<{ p: string; c: string; k: string }> {
  const re = new RegExp(`as ${clientId} \\((p\\d), (c\\d), (k\\d+)\\)`)
  const line = await m.log.take((l) => re.test(l), 5000, `Mosquitto's log line for ${clientId}`)
  const [, p, c, k] = line.match(re)!
  return { p: p!, c: c!, k: k! }
}

describe('broker link: MQTT 5 and 3.1.1, client ids, one gateway status (Mosquitto)', function () {
  this.timeout(30_000)
  let mosquitto: Mosquitto
  before(async function () {
    requireMosquitto(this)
    mosquitto = await Mosquitto.start()
  })
  after(async () => mosquitto?.dispose())

  it('speaks MQTT 5 by default, with a stable client id per connection, clean start and its keepalive', async () => {
    const gw = await startGateway({
      mqttUrl: mosquitto.url,
      mqttConnections: 2,
      mqttClientId: 'gw-m5',
      mqttKeepalive: 7,
    })
    try {
      // Mosquitto logs p5 for MQTT 5, p2 for 3.1.1; c1 for a clean start.
      expect(await mosquittoClient(mosquitto, 'gw-m5-0')).to.deep.equal({ p: 'p5', c: 'c1', k: 'k7' })
      expect(await mosquittoClient(mosquitto, 'gw-m5-1')).to.deep.equal({ p: 'p5', c: 'c1', k: 'k7' })
    } finally {
      await gw.close()
    }
  })

  it('speaks MQTT 3.1.1 when told to, and asks for a persistent session when mqttSessionExpiry is set', async () => {
    const gw = await startGateway({
      mqttUrl: mosquitto.url,
      mqttConnections: 1,
      mqttClientId: 'gw-m3',
      mqttProtocolVersion: '3.1.1',
      mqttSessionExpiry: 3600,
    })
    try {
      expect(await mosquittoClient(mosquitto, 'gw-m3-0')).to.deep.equal({ p: 'p2', c: 'c0', k: 'k30' })
    } finally {
      await gw.close()
    }
  })

  it("publishes the gateway's status once, whatever the number of connections", async () => {
    const watcher = await MqttWatcher.connect(mosquitto.url, [
      'hypertcp/$gateway/+/status',
      'hypertcp/+/status',
    ])
    const gw = await startGateway({ mqttUrl: mosquitto.url, mqttConnections: 4 })
    const device = await RawClient.connect(gw.port)
    try {
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      // The device's presence comes after every connection is up (start-up waits for all of them).
      // This gateway's: the suite's Mosquitto keeps what tests before left retained.
      await watcher.json(
        'hypertcp/dev-1/status',
        (p) => p.online === true && p.gateway === gw.config.gatewayId,
      )
      const statuses = watcher.inbox.history.filter(
        (m) => m.topic === `hypertcp/$gateway/${gw.config.gatewayId}/status`,
      )
      expect(statuses.map((m) => JSON.parse(m.text).online)).to.deep.equal([true])
    } finally {
      device.destroy()
      await gw.close()
      await watcher.end()
    }
  })

  it('says plainly when two gateways share a client id: the broker hands the session back and forth', async () => {
    const a = captureLogger()
    const b = captureLogger()
    const options = {
      mqttUrl: mosquitto.url,
      mqttConnections: 1,
      gatewayId: 'twin',
      mqttReconnectPeriod: 0.05,
    }
    const gw1 = await startGateway({ ...options, logger: a.logger })
    const gw2 = await startGateway({ ...options, logger: b.logger })
    try {
      await waitUntil(
        () => [...a.lines, ...b.lines].some((l) => l.startsWith('error') && l.includes('same client id')),
        'an error naming the shared client id',
        10_000,
      )
    } finally {
      await gw1.close()
      await gw2.close()
    }
  })
})

describe('broker link: MQTT 5 refusals reach the device (Mosquitto ACL)', function () {
  this.timeout(30_000)
  let mosquitto: Mosquitto
  const clients = trackRawClients()
  before(async function () {
    requireMosquitto(this)
    // dev-2 may not publish its uplinks; everything else is allowed.
    mosquitto = await Mosquitto.start({ acl: ['topic readwrite hypertcp/#', 'topic deny hypertcp/dev-2/up'] })
  })
  after(async () => mosquitto?.dispose())

  for (const [protocol, expected] of [
    ['5', Status.NOT_ALLOWED],
    ['3.1.1', 0],
  ] as const) {
    it(`${protocol}: a publish the ACL denies answers ${expected === 0 ? 'success (3.1.1 cannot say no)' : 'NOT_ALLOWED'}`, async () => {
      const { logger, lines } = captureLogger()
      const gw = await startGateway({ mqttUrl: mosquitto.url, mqttProtocolVersion: protocol, logger })
      try {
        const dev2 = await clients.track(RawClient.connect(gw.port))
        const dev1 = await clients.track(RawClient.connect(gw.port))
        expect(await dev2.login('tok-2')).to.equal(Status.SUCCESS)
        expect(await dev1.login('tok-1')).to.equal(Status.SUCCESS)
        dev2.sendFrame(Cmd.JSON_MESSAGE, 7, { targetId: 'server', payload: { denied: true } })
        dev1.sendFrame(Cmd.JSON_MESSAGE, 8, { targetId: 'server', payload: { allowed: true } })
        expect(await dev2.response(7)).to.equal(expected)
        expect(await dev1.response(8)).to.equal(0)
        const warned = lines.some(
          (l) => l.startsWith('warn') && l.includes('refused an uplink') && l.includes('0x87'),
        )
        expect(warned, 'a warning with the reason').to.equal(protocol === '5')
        expect(gw.stats().refusedByBroker).to.equal(protocol === '5' ? 1 : 0)
        expect(dev2.isClosed, 'the device stays connected').to.equal(false)
      } finally {
        await gw.close()
      }
    })
  }
})

describe('broker link: a refused subscription (external Aedes, MQTT 3.1.1 after auto fallback)', function () {
  this.timeout(20_000)
  const clients = trackRawClients()
  let broker: { url: string; close(): Promise<void> }
  before(async () => {
    broker = await externalAedes({
      // Aedes answers 0x80 in SUBACK when the callback gives no subscription.
      authorizeSubscribe: (_client, sub, callback) =>
        callback(null, sub.topic === 'hypertcp/dev-3/dn' ? null : sub),
    })
  })
  after(async () => broker?.close())

  it('logs in all the same, logs the topic at error, counts it, and says "downlink": false in presence', async () => {
    const { logger, lines } = captureLogger()
    const gw = await startGateway({ mqttUrl: broker.url, mqttConnections: 1, logger })
    const watcher = await MqttWatcher.connect(broker.url, ['hypertcp/dev-3/status'])
    try {
      const warned = lines.find((l) => l.startsWith('warn') && l.includes('does not take MQTT 5'))
      expect(warned, 'the fallback to 3.1.1 is logged once').to.be.a('string')
      const dev3 = await clients.track(RawClient.connect(gw.port))
      expect(await dev3.login('tok-3')).to.equal(Status.SUCCESS)
      const presence = await watcher.json('hypertcp/dev-3/status', (p) => p.downlink === false)
      expect(presence).to.include({ online: true, downlink: false })
      expect(
        lines.some(
          (l) =>
            l.startsWith('error') && l.includes('refused a subscription') && l.includes('hypertcp/dev-3/dn'),
        ),
      ).to.equal(true)
      expect(gw.stats().subscriptionsRefused).to.equal(1)
      dev3.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { up: 'still works' } })
      expect(await dev3.response(2)).to.equal(0)
    } finally {
      await watcher.end()
      await gw.close()
    }
  })
})

describe('broker link: protocol version negotiation', function () {
  this.timeout(20_000)
  it('auto: falls back to 3.1.1 at a broker that answers MQTT 5 with "unacceptable protocol version", once', async () => {
    const broker = await externalAedes()
    const { link: l, lines } = link([broker.url])
    try {
      expect(await l.waitConnected(5000)).to.equal(true)
      expect(l.protocolLevel).to.equal(4)
      expect(await publish(l, 'a/b', 'x')).to.equal(undefined)
      expect(lines.filter((x) => x.includes('does not take MQTT 5'))).to.have.length(1)
    } finally {
      await l.end()
      await broker.close()
    }
  })

  it('auto: falls back at a broker that closes an MQTT 5 CONNECT without answering (RabbitMQ 3.10)', async () => {
    const fake = await FakeBroker.start()
    const { link: l, lines } = link([fake.url])
    try {
      const first = await fake.next()
      await first.packets.take((p) => p.cmd === 'connect')
      expect(first.level).to.equal(5)
      first.socket.destroy()
      const second = await fake.next()
      await second.accept()
      expect(second.level).to.equal(4)
      expect(await l.waitConnected(5000)).to.equal(true)
      expect(
        lines.some((x) => x.startsWith('warn') && x.includes('closed the connection before CONNACK')),
      ).to.equal(true)
    } finally {
      await l.end()
      await fake.close()
    }
  })

  it('5: never falls back, and says why it cannot connect', async () => {
    const broker = await externalAedes()
    const { link: l, lines } = link([broker.url], { protocol: '5' })
    try {
      await waitUntil(
        () => lines.some((x) => x.startsWith('error') && x.includes('unacceptable protocol version')),
        'the refusal is logged',
      )
      expect(l.connected).to.equal(false)
      expect(l.protocolLevel).to.equal(5)
    } finally {
      await l.end()
      await broker.close()
    }
  })
})

describe('broker link: bad input from the broker gets a log line and a reconnection, never a crash', function () {
  this.timeout(20_000)
  let fake: FakeBroker
  beforeEach(async () => {
    fake = await FakeBroker.start()
  })
  afterEach(async () => fake.close())

  it('a CONNACK refusal: logged with its reason, retried', async () => {
    const { link: l, lines } = link([fake.url])
    try {
      await (await fake.next()).accept(0x86)
      await fake.next() // it tries again
      expect(
        lines.some((x) => x.startsWith('error') && x.includes('0x86 bad user name or password')),
      ).to.equal(true)
      expect(l.connected).to.equal(false)
    } finally {
      await l.end()
    }
  })

  it('no CONNACK at all: given up after the connect timeout, retried', async () => {
    const { link: l, lines } = link([fake.url], { connectTimeoutMs: 200 })
    try {
      const silent = await fake.next()
      await silent.closed
      await fake.next()
      expect(lines.some((x) => x.includes('no CONNACK within 0.2 s'))).to.equal(true)
    } finally {
      await l.end()
    }
  })

  for (const [what, bytes] of [
    ['a malformed remaining length', Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['a PUBACK for an identifier nothing awaits', Buffer.from([0x40, 0x02, 0x12, 0x34])],
    [
      'a packet a client never receives (SUBSCRIBE)',
      Buffer.from([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]),
    ],
  ] as const) {
    it(`${what}: the connection is dropped, the publish in flight is sent again on the next one`, async () => {
      const { link: l, lines } = link([fake.url])
      try {
        const first = await fake.next()
        await first.accept()
        expect(await l.waitConnected(2000)).to.equal(true)
        const published = publish(l, 'hypertcp/d/up', 'kept')
        await first.packets.take((p) => p.cmd === 'publish')
        first.sendRaw(bytes)
        await first.closed
        const second = await fake.next()
        await second.accept()
        const again = await second.packets.take((p) => p.cmd === 'publish')
        expect(again).to.deep.include({ topic: 'hypertcp/d/up', dup: true })
        second.send({ cmd: 'puback', messageId: again.messageId ?? 0, reasonCode: 0 })
        expect(await published).to.equal(undefined)
        expect(lines.some((x) => x.includes('broker protocol error'))).to.equal(true)
      } finally {
        await l.end()
      }
    })
  }

  it('a message over the size limit from a 3.1.1 broker: acknowledged, dropped unread, the connection kept', async () => {
    const dropped: string[] = []
    const { link: l } = link([fake.url], {
      protocol: '3.1.1',
      maxPacketSize: 200,
      onDropped: (t) => dropped.push(t),
    })
    const got = new Inbox<string>('messages')
    l.onMessage((topic) => {
      got.push(topic)
      return undefined
    })
    try {
      const c = await fake.next()
      await c.accept()
      expect(await l.waitConnected(2000)).to.equal(true)
      c.send({
        cmd: 'publish',
        topic: 'hypertcp/d/dn',
        payload: Buffer.alloc(5000),
        qos: 1,
        messageId: 77,
        retain: false,
        dup: false,
      })
      c.send({
        cmd: 'publish',
        topic: 'hypertcp/d/ok',
        payload: Buffer.from('{}'),
        qos: 1,
        messageId: 78,
        retain: false,
        dup: false,
      })
      expect(await got.take()).to.equal('hypertcp/d/ok')
      expect(await c.packets.take((p) => p.cmd === 'puback')).to.deep.include({ messageId: 77 })
      expect(await c.packets.take((p) => p.cmd === 'puback')).to.deep.include({ messageId: 78 })
      expect(dropped).to.deep.equal(['hypertcp/d/dn'])
      expect(got.history).to.deep.equal(['hypertcp/d/ok'])
    } finally {
      await l.end()
    }
  })

  it('MQTT 5: announces its Maximum Packet Size, respects the Receive Maximum, reads PUBACK reason strings', async () => {
    const { link: l } = link([fake.url], { maxPacketSize: 3000 })
    try {
      const c = await fake.next()
      const connect = await c.packets.take((p) => p.cmd === 'connect')
      expect(connect).to.have.nested.property('properties.maximumPacketSize', 3000)
      c.send({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { receiveMaximum: 1 } })
      expect(await l.waitConnected(2000)).to.equal(true)
      const first = publish(l, 't/1', 'a')
      const second = publish(l, 't/2', 'b')
      const p1 = await c.packets.take((p) => p.cmd === 'publish')
      // Only one in flight: t/2 waits for t/1's acknowledgement. A SUBSCRIBE made now leaves after
      // anything already written: once it is here, so is whatever was sent before it.
      l.subscribe(['probe'], 1, () => {})
      await c.packets.take((p) => p.cmd === 'subscribe')
      expect(c.packets.history.filter((p) => p.cmd === 'publish')).to.have.length(1)
      c.send({ cmd: 'pingresp' })
      await c.packets
        .take((p) => p.cmd === 'pingreq' || p.cmd === 'publish', 300)
        .then(
          (p) => expect(p.cmd, 'nothing else sent').to.not.equal('publish'),
          () => {},
        )
      c.send({
        cmd: 'puback',
        messageId: p1.messageId ?? 0,
        reasonCode: 0x97,
        properties: { reasonString: 'over quota' },
      })
      const err = await first
      expect(err?.message).to.include('0x97 quota exceeded').and.include('over quota')
      const p2 = await c.packets.take((p) => p.cmd === 'publish')
      expect(p2).to.deep.include({ topic: 't/2' })
      c.send({ cmd: 'puback', messageId: p2.messageId ?? 0, reasonCode: 0 })
      expect(await second).to.equal(undefined)
    } finally {
      await l.end()
    }
  })

  it('a broker that stops answering: dropped after the keepalive, and tried again', async () => {
    const { link: l, lines } = link([fake.url], { keepalive: 1 })
    try {
      const c = await fake.next()
      await c.accept()
      await c.packets.take((p) => p.cmd === 'pingreq', 2000) // it asks …
      await c.closed // … and, unanswered, gives up
      await fake.next()
      expect(lines.some((x) => x.includes('no answer from the broker'))).to.equal(true)
    } finally {
      await l.end()
    }
  })
})

describe('broker link: several brokers, failover, a hanging broker, shutdown deadline (Mosquitto)', function () {
  this.timeout(60_000)
  const clients = trackRawClients()
  let a: Mosquitto
  let b: Mosquitto
  before(async function () {
    requireMosquitto(this)
    a = await Mosquitto.start()
    b = await Mosquitto.start()
  })
  after(async () => {
    await a?.dispose()
    await b?.dispose()
  })

  it('moves to the next broker of the list when one dies; devices stay connected and work through it', async () => {
    const gw = await startGateway({ mqttUrl: [a.url, b.url], mqttConnections: 2, mqttReconnectPeriod: 0.05 })
    const watcherB = await MqttWatcher.connect(b.url, ['hypertcp/dev-1/up', 'hypertcp/dev-1/status'])
    try {
      const dev = await clients.track(RawClient.connect(gw.port))
      expect(await dev.login('tok-1')).to.equal(Status.SUCCESS)
      await a.stop('SIGKILL')
      // On b: presence republished, subscriptions made again.
      await watcherB.json(
        'hypertcp/dev-1/status',
        (p) => p.online === true && p.gateway === gw.config.gatewayId,
        10_000,
      )
      dev.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { via: 'b' } })
      expect(await dev.response(2, 10_000)).to.equal(0)
      expect(await watcherB.json('hypertcp/dev-1/up')).to.deep.equal({ via: 'b' })
      await watcherB.publish('hypertcp/dev-1/dn', '{"from":"b"}')
      const f = await dev.frames.take((x) => x.type === Cmd.JSON_MESSAGE, 5000)
      expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { from: 'b' } })
      expect(dev.isClosed).to.equal(false)
    } finally {
      await watcherB.end()
      await gw.close()
      await a.run()
    }
  })

  it('a frozen broker: the devices it stalls are not closed for keepalive, and get their acks once it is back', async () => {
    const { logger, lines } = captureLogger()
    const gw = await startGateway({
      mqttUrl: a.url,
      mqttConnections: 1,
      mqttKeepalive: 1,
      mqttReconnectPeriod: 0.05,
      mqttConnectTimeout: 1,
      keepalive: 0.3,
      maxInflight: 2,
      logger,
    })
    const watcher = await MqttWatcher.connect(a.url, ['hypertcp/dev-1/up'])
    try {
      const dev = await clients.track(RawClient.connect(gw.port))
      expect(await dev.login('tok-1')).to.equal(Status.SUCCESS)
      a.freeze()
      for (let s = 1; s <= 4; s++) dev.sendFrame(Cmd.JSON_MESSAGE, s, { targetId: 'server', payload: { s } })
      // The gateway gives up on the frozen broker after its keepalive (1 s): by then the device's
      // own keepalive (0.3 s, closed 0.15 s later) has passed several times over.
      await waitUntil(
        () => lines.some((l) => l.includes('no answer from the broker')),
        'the link gives up',
        10_000,
      )
      expect(dev.isClosed, 'the device is still connected').to.equal(false)
      a.thaw()
      for (let s = 1; s <= 4; s++) expect(await dev.response(s, 15_000), `ack ${s}`).to.equal(0)
      const seen: number[] = []
      while (new Set(seen).size < 4)
        seen.push(((await watcher.json('hypertcp/dev-1/up', () => true, 10_000)) as { s: number }).s)
      const first = seen.filter((s, i) => seen.indexOf(s) === i)
      expect(first, 'in order, apart from duplicates').to.deep.equal([1, 2, 3, 4])
      expect(gw.stats().closes.keepalive_timeout ?? 0).to.equal(0)
    } finally {
      a.thaw()
      await watcher.end()
      await gw.close()
    }
  })

  it('SIGTERM with a broker that never answers: the process stops within shutdownTimeout, exit 1 for what was not acknowledged', async () => {
    requireBuild()
    const config = join(tmpdir(), `htgw-shutdown-${process.pid}.json`)
    writeFileSync(config, JSON.stringify({ devices: [{ id: 'dev-1', token: 'tok-1' }] }))
    const gw = CliProcess.start([
      ...['--config', config, '--host', '127.0.0.1', '--port', '0', '--mqtt-url', a.url],
      ...['--mqtt-connections', '1', '--shutdown-timeout', '1', '--mqtt-connect-timeout', '1'],
    ])
    const port = Number((await gw.match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/))[1])
    const dev = await clients.track(RawClient.connect(port))
    expect(await dev.login('tok-1')).to.equal(Status.SUCCESS)
    a.freeze()
    try {
      dev.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { never: 'acked' } })
      const started = Date.now()
      gw.kill('SIGTERM')
      const code = await gw.exited
      expect(Date.now() - started, 'within shutdownTimeout and the last close').to.be.below(4000)
      expect(code).to.equal(1)
      expect(gw.lines.history.some((l) => l.includes('not all acknowledged'))).to.equal(true)
    } finally {
      a.thaw()
    }
  })

  it('SIGTERM while the broker accepts TCP and never answers CONNECT: stops within shutdownTimeout, exit 0', async () => {
    requireBuild()
    const fake = await FakeBroker.start()
    try {
      const gw = CliProcess.start([
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--mqtt-url',
        fake.url,
        '--mqtt-connections',
        '2',
        '--shutdown-timeout',
        '1',
        '--mqtt-connect-timeout',
        '0.5',
      ])
      await gw.match(/HyperTCP listening/)
      const started = Date.now()
      gw.kill('SIGTERM')
      expect(await gw.exited).to.equal(0)
      expect(Date.now() - started).to.be.below(4000)
    } finally {
      await fake.close()
    }
  })
})
