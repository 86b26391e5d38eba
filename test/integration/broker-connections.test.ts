import { createServer, type Server } from 'node:net'
import { Aedes, type AedesPublishPacket, type Client } from 'aedes'
import { expect } from 'chai'
import { BrokerLink } from '../../src/adapters/broker-link/link.js'
import { laneIndex } from '../../src/bridge/lanes.js'
import { DEFAULT_MQTT_CONNECTIONS } from '../../src/config/settings.js'
import type { Gateway } from '../../src/gateway/gateway.js'
import { silentLogger } from '../../src/log.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'

const LANES = 3
/** The first device id of the form `lane-dev-N` that `laneIndex` puts on each connection. */
const IDS = Array.from({ length: LANES }, (_, lane) => {
  for (let n = 0; ; n++) if (laneIndex(`lane-dev-${n}`, LANES) === lane) return `lane-dev-${n}`
})
const DEVICES = IDS.map((id) => ({ id, token: `${id}-token` }))

describe('mqttConnections: several broker connections, each device on one (external Aedes broker)', () => {
  let aedes: Aedes
  let server: Server
  let gw: Gateway
  let brokerUrl: string
  let watcher: MqttWatcher
  const devices: OriginalDevice[] = []
  /** Client id of the broker connection that published each message, by topic. */
  const publishers = new Map<string, string[]>()
  /** The broker's connected clients, by id. */
  const clients = new Map<string, Client>()

  before(async () => {
    aedes = await Aedes.createBroker()
    aedes.on('clientReady', (client: Client) => clients.set(client.id, client))
    aedes.on('clientDisconnect', (client: Client) => {
      if (clients.get(client.id) === client) clients.delete(client.id)
    })
    aedes.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
      if (client === null) return
      const list = publishers.get(packet.topic) ?? []
      list.push(client.id)
      publishers.set(packet.topic, list)
    })
    server = createServer(aedes.handle)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    brokerUrl = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`
    gw = await startGateway({
      mqttUrl: brokerUrl,
      mqttConnections: LANES,
      mqttClientId: 'gw-lanes',
      mqttReconnectPeriod: 0.2,
      devices: DEVICES,
    })
    watcher = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/+/up', 'hypertcp/+/status'])
    for (const d of DEVICES) {
      const device = await OriginalDevice.connect(gw.port, d.token, { pingIntervalMs: 0 })
      expect(device.loginStatus).to.equal(200)
      devices.push(device)
    }
  })
  after(async () => {
    for (const d of devices) d.destroy()
    await watcher?.end()
    await gw?.close()
    await new Promise<void>((resolve) => aedes?.close(() => resolve()))
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  })

  const clientIdOf = (lane: number) => `gw-lanes-${lane}`
  const connected = () => [...clients.keys()].filter((id) => id.startsWith('gw-lanes')).sort()

  it('opens one connection per setting, each with the configured client id and its number', () => {
    expect(connected()).to.deep.equal(['gw-lanes-0', 'gw-lanes-1', 'gw-lanes-2'])
    expect(gw.mqttConnected).to.equal(true)
  })

  it("carries each device's presence and uplinks on its own connection", async () => {
    for (const [lane, d] of devices.entries()) {
      d.sendToServer({ lane })
      expect(await watcher.json(`hypertcp/${IDS[lane]}/up`)).to.deep.equal({ lane })
      // Aedes reports a publish once it has routed it, after the watcher may have it.
      await waitUntil(() => publishers.has(`hypertcp/${IDS[lane]}/up`), 'the broker reports the publish')
      expect(publishers.get(`hypertcp/${IDS[lane]}/up`)).to.deep.equal([clientIdOf(lane)])
      expect(new Set(publishers.get(`hypertcp/${IDS[lane]}/status`))).to.deep.equal(
        new Set([clientIdOf(lane)]),
      )
    }
  })

  it('delivers between devices on different connections, broadcasts to all, downlinks to each', async () => {
    const [a, b, c] = devices as [OriginalDevice, OriginalDevice, OriginalDevice]
    a.sendMessage(IDS[1]!, { hello: 'b' })
    expect(await b.events.take((e) => e.kind === 'message')).to.deep.include({
      from: IDS[0],
      payload: { hello: 'b' },
    })
    c.broadcastMessage({ to: 'all' })
    for (const x of [a, b]) {
      expect(await x.events.take((e) => e.kind === 'broadcast')).to.deep.include({ from: IDS[2] })
    }
    for (const [lane, d] of devices.entries()) {
      await watcher.publish(`hypertcp/${IDS[lane]}/dn`, JSON.stringify({ lane }))
      expect(await d.events.take((e) => e.kind === 'message')).to.deep.include({ payload: { lane } })
    }
  })

  it('restores a lost connection alone: its devices get downlinks again, the others never stopped', async () => {
    const lost = clients.get('gw-lanes-2')!
    lost.close()
    await waitUntil(() => clients.has('gw-lanes-2') && clients.get('gw-lanes-2') !== lost, 'lane 2 back')
    // Subscriptions come back with the connection; poll with downlinks until one arrives.
    const c = devices[2]!
    let delivered = false
    for (let i = 0; i < 50 && !delivered; i++) {
      await watcher.publish(`hypertcp/${IDS[2]}/dn`, JSON.stringify({ again: i }))
      delivered = await c.events
        .take((e) => e.kind === 'message', 100)
        .then(
          () => true,
          () => false,
        )
    }
    expect(delivered, 'a downlink reaches the device on the restored connection').to.equal(true)
    expect(gw.stats().online, 'no device was dropped').to.equal(LANES)
    devices[0]!.sendToServer({ still: 'here' })
    expect(await watcher.json(`hypertcp/${IDS[0]}/up`, (p) => p.still === 'here')).to.deep.equal({
      still: 'here',
    })
  })

  it('an ended broker connection answers a late publish with an error, and never throws', async () => {
    // A shutdown racing a reconnection: a CONNACK after the end makes the gateway publish its status.
    const port = new BrokerLink({
      urls: [brokerUrl],
      username: null,
      password: null,
      clientId: 'gw-ended',
      protocol: 'auto',
      keepalive: 30,
      sessionExpiry: 0,
      tls: { ca: undefined, cert: undefined, key: undefined, rejectUnauthorized: true },
      reconnectMs: 200,
      reconnectCapMs: 1000,
      connectTimeoutMs: 5000,
      maxPacketSize: 65536,
      will: { topic: 'gw-ended/status', payload: '{}' },
      logger: silentLogger,
    })
    expect(await port.waitConnected(5000)).to.equal(true)
    await port.end()
    const err = await new Promise<Error | undefined>((resolve) =>
      port.publish('gw-ended/late', 'late', { qos: 1 }, resolve),
    )
    expect(err).to.be.instanceOf(Error)
  })

  it('opens DEFAULT_MQTT_CONNECTIONS connections when the setting is not given', async () => {
    const other = await startGateway({
      mqttUrl: gw.mqttUrl,
      mqttClientId: 'gw-default',
      devices: DEVICES,
    })
    try {
      const expected = Array.from({ length: DEFAULT_MQTT_CONNECTIONS }, (_, i) => `gw-default-${i}`).sort()
      await waitUntil(
        () => [...clients.keys()].filter((id) => id.startsWith('gw-default')).length === expected.length,
        'the default connections',
      )
      expect([...clients.keys()].filter((id) => id.startsWith('gw-default')).sort()).to.deep.equal(expected)
    } finally {
      await other.close()
    }
  })
})

describe('mqttConnections with the embedded broker', () => {
  it('warns that the setting has no effect when it was changed, and says nothing at the default', async () => {
    const warning = 'mqttConnections applies to an external broker'
    for (const [mqttConnections, warned] of [
      [2, true],
      [DEFAULT_MQTT_CONNECTIONS, false],
    ] as const) {
      const { logger, lines } = captureLogger()
      const gw = await startGateway({ logger, mqttConnections })
      await gw.close()
      expect(
        lines.some((l) => l.startsWith('warn') && l.includes(warning)),
        `mqttConnections ${mqttConnections}`,
      ).to.equal(warned)
    }
  })
})
