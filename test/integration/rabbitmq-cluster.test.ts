import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RabbitCluster, requireRabbitmq } from '../helpers/rabbitmq.js'
import { RawClient } from '../helpers/raw-client.js'

interface Up {
  d: string
  s: number
}

/**
 * Two gateway instances on a real distributed broker: a 2-node RabbitMQ 3.10 cluster (MQTT plugin,
 * MQTT 3.1.1 only), gateway A on node 1 then node 2, gateway B on node 2 then node 1. Everything
 * between them goes through the cluster; when node 1 dies, A moves to node 2.
 */
describe('a RabbitMQ cluster: two gateways on two nodes, and a node killed mid-stream', function () {
  this.timeout(60_000)
  let cluster: RabbitCluster
  let a: Gateway
  let b: Gateway
  const logA = captureLogger()
  const devices: { destroy(): void; closed: Promise<void> }[] = []

  before(async function () {
    this.timeout(150_000)
    requireRabbitmq(this)
    cluster = await RabbitCluster.start()
    // As the README says for a RabbitMQ 3.10 cluster: QoS 1 subscription queues (named after the
    // client id, homed on one node) mirrored, so that the gateway's connections can move to another
    // node with the same client ids (else that node refuses their SUBSCRIBE while the home is down).
    await cluster.rabbitmqctl(0, [
      ...['set_policy', '--apply-to', 'queues', 'mqtt-subscriptions', '^mqtt-subscription-'],
      '{"ha-mode":"all","ha-sync-mode":"automatic"}',
    ])
    const [n1, n2] = cluster.nodes.map((n) => n.mqttUrl) as [string, string]
    // Devices stream as fast as they can here: no per-device rate.
    const common = { mqttConnections: 2, mqttReconnectPeriod: 0.1, mqttConnectTimeout: 5, messageRate: 0 }
    a = await startGateway({ ...common, mqttUrl: [n1, n2], gatewayId: 'gw-a', logger: logA.logger })
    b = await startGateway({ ...common, mqttUrl: [n2, n1], gatewayId: 'gw-b' })
  })
  after(async function () {
    this.timeout(60_000)
    for (const d of devices) d.destroy()
    await a?.close()
    await b?.close()
    await cluster?.dispose()
  })

  async function device(gw: Gateway, token: string): Promise<OriginalDevice> {
    const d = await OriginalDevice.connect(gw.port, token, { pingIntervalMs: 0 })
    devices.push(d)
    expect(d.loginStatus).to.equal(200)
    return d
  }

  it('connects with MQTT 3.1.1 after RabbitMQ closes the MQTT 5 CONNECT (auto), and says so once per connection', () => {
    const warnings = logA.lines.filter((l) => l.startsWith('warn') && l.includes('does not take MQTT 5'))
    expect(warnings).to.have.length(2) // one per broker connection, for node 1
    expect(a.mqttConnected && b.mqttConnected).to.equal(true)
  })

  it('delivers between a device on A (node 1) and one on B (node 2), both ways, and broadcasts across', async () => {
    const one = await device(a, 'tok-1')
    const two = await device(b, 'tok-2')
    one.sendMessage('dev-2', { hello: 'from node 1' })
    expect(await two.events.take((e) => e.kind === 'message', 10_000)).to.deep.include({
      from: 'dev-1',
      payload: { hello: 'from node 1' },
    })
    two.sendMessage('dev-1', { hello: 'from node 2' })
    expect(await one.events.take((e) => e.kind === 'message', 10_000)).to.deep.include({
      from: 'dev-2',
      payload: { hello: 'from node 2' },
    })
    two.broadcastMessage({ to: 'all' })
    expect(await one.events.take((e) => e.kind === 'broadcast', 10_000)).to.deep.include({
      from: 'dev-2',
      payload: { to: 'all' },
    })
  })

  it('takes a device over from A to B: the older connection is closed, downlinks reach the newer', async () => {
    const watcher = await MqttWatcher.connect(cluster.nodes[1]!.mqttUrl, ['hypertcp/dev-3/status'])
    try {
      const first = await device(a, 'tok-3')
      const takeovers = a.stats().closes.takeover ?? 0
      const second = await device(b, 'tok-3')
      await first.closed
      expect(a.stats().closes.takeover).to.equal(takeovers + 1)
      await watcher.json('hypertcp/dev-3/status', (p) => p.online === true && p.gateway === 'gw-b', 10_000)
      await watcher.publish('hypertcp/dev-3/dn', '{"where":"gw-b"}')
      expect(await second.events.take((e) => e.kind === 'message', 10_000)).to.deep.include({
        payload: { where: 'gw-b' },
      })
    } finally {
      await watcher.end()
    }
  })

  it('node 1 killed during 3 devices x 300 QoS 1 uplinks: A moves to node 2, every acknowledged message arrives, devices stay', async () => {
    const subscriber = await MqttWatcher.connect(cluster.nodes[1]!.mqttUrl, ['hypertcp/+/up'])
    const ids = ['dev-1', 'dev-2', 'dev-4']
    const clients = await Promise.all(
      ['tok-1', 'tok-2', 'tok-4'].map(async (token) => {
        const c = await RawClient.connect(a.port)
        devices.push({ destroy: () => c.destroy(), closed: c.closed })
        expect(await c.login(token)).to.equal(Status.SUCCESS)
        return c
      }),
    )
    const N = 300
    const acked = new Map<string, number[]>(ids.map((d) => [d, []]))
    const answered = clients.map(async (c, i) => {
      const d = ids[i]!
      for (let s = 1; s <= N; s++) {
        c.sendFrame(Cmd.JSON_MESSAGE, s, { targetId: 'server', payload: { d, s } })
        if (s % 25 === 0) await new Promise((r) => setImmediate(r))
      }
      for (let s = 1; s <= N; s++) if ((await c.response(s, 30_000)) === 0) acked.get(d)!.push(s)
    })
    const received = () => subscriber.inbox.history.filter((m) => m.topic.endsWith('/up'))
    await waitUntil(() => received().length > 50, 'the stream is flowing', 15_000)
    const beforeKill = received().length
    await cluster.kill(0)
    await Promise.all(answered).catch((err) => {
      // What gateway A's broker connections went through, for the failure report.
      console.log(
        logA.lines
          .filter((l) => l.includes('"component":"mqtt"'))
          .slice(-30)
          .join('\n'),
      )
      throw err
    })
    const total = [...acked.values()].reduce((n, s) => n + s.length, 0)
    expect(total, 'every uplink acknowledged (none refused)').to.equal(3 * N)
    const seen = () => new Set(received().map((m) => m.text))
    await waitUntil(
      () => [...acked].every(([d, list]) => list.every((s) => seen().has(JSON.stringify({ d, s })))),
      'every acknowledged message at the subscriber on node 2',
      20_000,
    )
    // In order per device, apart from duplicates (what was in flight at the kill was sent again).
    for (const d of ids) {
      const order = received()
        .map((m) => JSON.parse(m.text) as Up)
        .filter((m) => m.d === d)
        .map((m) => m.s)
      const first = order.filter((s, i) => order.indexOf(s) === i)
      expect(first, `order of ${d}`).to.deep.equal([...first].sort((x, y) => x - y))
    }
    const duplicates = received().length - seen().size
    console.log(
      `      ${total} acknowledged, ${beforeKill} received before the kill, all delivered; ${duplicates} duplicates`,
    )
    expect(beforeKill, 'node 1 died mid-stream').to.be.below(3 * N)
    for (const c of clients) expect(c.isClosed, 'the device stayed connected').to.equal(false)
    expect(a.mqttConnected, 'A is on node 2').to.equal(true)
    expect(logA.lines.some((l) => l.includes('broker connection restored'))).to.equal(true)
    await subscriber.end()
  })
})
