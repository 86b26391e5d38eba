import { join } from 'node:path'
import { expect } from 'chai'
import mqtt, { type MqttClient } from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { root } from '../helpers/cli.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { expectPeerTakeover, expectPeerTraffic, nextMessage, PEER_TOPICS } from '../helpers/peer-topics.js'
import { RabbitCluster, requireRabbitmq } from '../helpers/rabbitmq.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

// The README's RabbitMQ set-up: deploy/rabbitmq/permissions.sh run against a real RabbitMQ 3.10
// (its MQTT plugin), gateways with the peer topics, and each role tried on what it may not do.

const PASSWORDS = { gateway: 'gw-pw', app: 'app-pw', monitor: 'mon-pw', admin: 'admin-pw' } as const
type User = keyof typeof PASSWORDS
/** How long a device waits for a message through the cluster (slower than one broker). */
const MESSAGE_WAIT_MS = 10_000

describe('security with RabbitMQ: topic permissions (deploy/rabbitmq/permissions.sh)', function () {
  this.timeout(30_000)
  const { track } = trackRawClients()
  let cluster: RabbitCluster
  let a: Gateway
  let b: Gateway
  const clients: MqttClient[] = []

  before(async function () {
    this.timeout(150_000)
    requireRabbitmq(this)
    cluster = await RabbitCluster.start({ size: 1 })
    const script = join(root, 'deploy/rabbitmq/permissions.sh')
    // Run twice, as after a change: the second run sets the same again (and the app's password
    // given the first time only is left alone).
    const first = await cluster.script(0, script, { GATEWAY_PASSWORD: 'x', APP_PASSWORD: PASSWORDS.app })
    expect(first.trim().split('\n')).to.deep.equal([
      'gateway: set',
      'app: set',
      'monitor: MONITOR_PASSWORD not set, left alone',
      'admin: ADMIN_PASSWORD not set, left alone',
    ])
    const again = await cluster.script(0, script, {
      GATEWAY_PASSWORD: PASSWORDS.gateway,
      MONITOR_PASSWORD: PASSWORDS.monitor,
      ADMIN_PASSWORD: PASSWORDS.admin,
    })
    expect(again.trim().split('\n')).to.deep.equal([
      'gateway: set',
      'app: APP_PASSWORD not set, left alone',
      'monitor: set',
      'admin: set',
    ])
    // As the script says: no guest any more.
    await cluster.rabbitmqctl(0, ['delete_user', 'guest'])
    const options = {
      mqttUrl: cluster.nodes[0]!.mqttUrl,
      mqttUsername: 'gateway',
      mqttPassword: PASSWORDS.gateway,
      mqttProtocolVersion: '3.1.1' as const,
      topics: PEER_TOPICS,
    }
    a = await startGateway({ ...options, gatewayId: 'gw-a' })
    b = await startGateway({ ...options, gatewayId: 'gw-b' })
  })
  after(async function () {
    this.timeout(60_000)
    for (const c of clients.splice(0)) await c.endAsync(true)
    await a?.close()
    await b?.close()
    await cluster?.dispose()
  })
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true)
  })

  async function login(
    user: User | 'guest',
    password: string = PASSWORDS[user as User],
  ): Promise<MqttClient> {
    const c = await mqtt.connectAsync(cluster.nodes[0]!.mqttUrl, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      username: user,
      password,
    })
    clients.push(c)
    return c
  }

  async function device(gw: Gateway, token: string): Promise<RawClient> {
    const d = await track(RawClient.connect(gw.port!))
    expect(await d.login(token)).to.equal(Status.SUCCESS)
    return d
  }

  /** Whether the broker took a QoS 1 publish (PUBACK), or closed the connection instead. */
  async function published(c: MqttClient, topic: string, body: string): Promise<boolean> {
    const closed = new Promise<false>((resolve) => c.once('close', () => resolve(false)))
    return Promise.race([c.publishAsync(topic, body, { qos: 1 }).then(() => true), closed])
  }

  it('refuses the guest user and a wrong password', async () => {
    for (const [user, password] of [
      ['guest', 'guest'],
      ['app', 'guess'],
    ] as const) {
      const refused = await login(user, password).then(
        () => 'connected',
        (err: Error) => err.message,
      )
      expect(refused, user).to.match(/Not authorized|Bad username or password/)
    }
  })

  it('carries device-to-device messages and broadcasts between gateways, with their sender', async () => {
    await expectPeerTraffic(
      await device(a, 'tok-1'),
      await device(b, 'tok-3'),
      await login('app'),
      MESSAGE_WAIT_MS,
    )
  })

  it('lets an app and a monitor read uplinks and presence, not dn, ctl or the peer topics', async () => {
    // A subscription the permissions refuse closes the connection too (3.10), so one client each.
    const subscribed = async (user: User, filter: string): Promise<number | 'closed'> => {
      const c = await login(user)
      const closed = new Promise<'closed'>((resolve) => c.once('close', () => resolve('closed')))
      const granted = c.subscribeAsync(filter, { qos: 1 }).then(([g]) => g?.qos ?? -1)
      return Promise.race([granted.catch(() => closed), closed])
    }
    for (const user of ['app', 'monitor'] as const) {
      for (const [filter, outcome] of [
        ['hypertcp/+/up', 1],
        ['hypertcp/+/status', 1],
        ['hypertcp/broadcast', 1],
        ['hypertcp/$peers/broadcast', 1],
        ['hypertcp/#', 'closed'],
        ['hypertcp/+/dn', 'closed'],
        ['hypertcp/+/ctl', 'closed'],
        ['hypertcp/+/peer', 'closed'],
      ] as const) {
        expect(await subscribed(user, filter), `${user} subscribes ${filter}`).to.equal(outcome)
      }
    }
  })

  it("believes no app's from, peer message or takeover notice; nobody but gateways publishes presence", async () => {
    const dev3 = await device(b, 'tok-3')
    const app = await login('app')
    const replaced = b.stats().controlRefused.from_not_believed ?? 0
    expect(
      await published(app, 'hypertcp/dev-3/dn', '{"from":"dev-1","payload":{"command":"unlock"}}'),
    ).to.equal(true)
    expect(await nextMessage(dev3, Cmd.JSON_MESSAGE, MESSAGE_WAIT_MS)).to.deep.equal({
      from: 'server',
      payload: { command: 'unlock' },
    })
    expect(b.stats().controlRefused.from_not_believed).to.equal(replaced + 1)
    // What only gateways may write: the broker closes the client instead of routing it.
    for (const [user, topic, body] of [
      ['app', 'hypertcp/dev-3/peer', '{"from":"dev-1","payload":{"x":1}}'],
      ['admin', 'hypertcp/dev-3/peer', '{"action":"takeover","gateway":"x","session":"y","at":1e15}'],
      ['app', 'hypertcp/dev-3/ctl', '{"action":"kick"}'],
      ['app', 'hypertcp/dev-3/status', '{"online":false}'],
      ['admin', 'hypertcp/dev-3/up', '{"fake":1}'],
      ['monitor', 'hypertcp/dev-3/dn', '{"x":1}'],
    ] as const) {
      expect(await published(await login(user), topic, body), `${user} → ${topic}`).to.equal(false)
    }
    // An admin's takeover notice on the control topic closes nothing; its kick does.
    const admin = await login('admin')
    const notBelieved = b.stats().controlRefused.takeover_not_believed ?? 0
    const forged = { action: 'takeover', gateway: 'elsewhere', session: 'x', at: Date.now() + 60_000 }
    expect(await published(admin, 'hypertcp/dev-3/ctl', JSON.stringify(forged))).to.equal(true)
    await waitUntil(
      () => b.stats().controlRefused.takeover_not_believed === notBelieved + 1,
      'the takeover notice ignored',
    )
    // Nothing refused reached the device: the next message is this downlink.
    expect(await published(admin, 'hypertcp/dev-3/dn', '{"n":2}')).to.equal(true)
    expect(await nextMessage(dev3, Cmd.JSON_MESSAGE, MESSAGE_WAIT_MS)).to.deep.equal({
      from: 'server',
      payload: { n: 2 },
    })
    expect(await published(admin, 'hypertcp/dev-3/ctl', '{"action":"kick"}')).to.equal(true)
    await dev3.waitClosed()
  })

  it('takes a device over from one gateway to the other, the notice on the peer topic', async () => {
    await expectPeerTakeover(
      await login('admin'),
      () => device(a, 'tok-2'),
      () => device(b, 'tok-2'),
    )
  })
})
