import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { expect } from 'chai'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Inbox } from '../helpers/inbox.js'
import { canConnect } from '../helpers/net.js'
import { RabbitCluster, requireRabbitmq } from '../helpers/rabbitmq.js'

interface Message {
  topic: string
  text: string
  qos: number
  retain: boolean
}

/**
 * What the gateway may rely on, and must not, when its broker is a RabbitMQ 3.10 cluster: each
 * test pins down one behaviour of the MQTT plugin as observed, and so proves the harness works.
 */
describe('RabbitMQ harness: a 2-node RabbitMQ 3.10 cluster with the MQTT plugin', () => {
  let cluster: RabbitCluster
  const clients: MqttClient[] = []
  const sockets: Socket[] = []

  before(async function () {
    this.timeout(120_000)
    requireRabbitmq(this)
    cluster = await RabbitCluster.start()
  })
  after(async function () {
    this.timeout(30_000)
    await cluster?.dispose()
  })
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)))
  })

  /** An MQTT 3.1.1 client on node `index` that records what it receives (no reconnects: a kill must show). */
  async function client(
    index: number,
    options: IClientOptions = {},
  ): Promise<{ client: MqttClient; inbox: Inbox<Message> }> {
    const inbox = new Inbox<Message>(`mqtt messages on node ${index}`)
    const c = await mqtt.connectAsync(cluster.nodes[index]!.mqttUrl, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    })
    clients.push(c)
    c.on('message', (topic, payload, packet) =>
      inbox.push({ topic, text: payload.toString(), qos: packet.qos, retain: packet.retain }),
    )
    return { client: c, inbox }
  }

  /** A bare TCP connection to node `index`'s MQTT port, with every packet the broker sends parsed. */
  async function raw(index: number): Promise<{
    send: (packet: Packet, protocolVersion?: number) => void
    packets: Inbox<Packet>
    closed: Promise<number>
  }> {
    const packets = new Inbox<Packet>(`packets from node ${index}`)
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p) => packets.push(p))
    let received = 0
    const socket = connect(cluster.nodes[index]!.mqttPort, '127.0.0.1')
    sockets.push(socket)
    socket.on('data', (d) => {
      received += d.length
      parser.parse(d)
    })
    socket.on('error', () => {})
    // Resolves with how many bytes the broker had sent when it closed the connection.
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(received)))
    closed.then(() => packets.close('connection closed'))
    await new Promise((resolve) => socket.once('connect', resolve))
    return {
      send: (packet, protocolVersion = 4) => socket.write(mqttPacket.generate(packet, { protocolVersion })),
      packets,
      closed,
    }
  }

  it('runs two clustered nodes, each a beam.smp VM listening on 127.0.0.1 only', async () => {
    const status = JSON.parse(await cluster.rabbitmqctl(1, ['cluster_status', '--formatter', 'json'])) as {
      running_nodes: string[]
      listeners: Record<string, { interface: string; protocol: string }[]>
    }
    expect(status.running_nodes).to.have.members(cluster.nodes.map((n) => n.name))
    for (const n of cluster.nodes) {
      // The pid tests SIGKILL is the VM itself, not a shell script around it.
      expect(readFileSync(`/proc/${n.pid}/comm`, 'utf8').trim()).to.equal('beam.smp')
      const listeners = status.listeners[n.name]!
      expect(listeners.map((l) => l.protocol)).to.include.members(['mqtt', 'amqp', 'clustering'])
      for (const l of listeners) expect(l.interface).to.equal('127.0.0.1')
    }
  })

  it('closes an MQTT 5 CONNECT without a CONNACK: 3.10 speaks MQTT 3.1 and 3.1.1 only', async () => {
    // The node logs "MQTT cannot parse a frame ... unparseable payload" and drops the connection:
    // an MQTT 5 client sees the socket close, with no reason code to fall back on.
    const r = await raw(0)
    r.send(
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: 'htgw-v5',
        clean: true,
        keepalive: 30,
      },
      5,
    )
    expect(await r.closed).to.equal(0)
  })

  it('delivers a QoS 1 publish on node 1 to a subscriber on node 2', async () => {
    const sub = await client(1)
    await sub.client.subscribeAsync('hypertcp/+/up', { qos: 1 })
    const pub = await client(0)
    await pub.client.publishAsync('hypertcp/dev-1/up', '{"n":1}', { qos: 1 })
    expect(await sub.inbox.take((m) => m.topic === 'hypertcp/dev-1/up')).to.deep.equal({
      topic: 'hypertcp/dev-1/up',
      text: '{"n":1}',
      qos: 1,
      retain: false,
    })
  })

  it('answers a QoS 2 PUBLISH with a PUBACK, and grants QoS 1 for a QoS 2 subscription', async () => {
    const sub = await client(1)
    // QoS 2 is not supported: the plugin downgrades it to 1, in both directions.
    expect(await sub.client.subscribeAsync('hypertcp/dev-2/up', { qos: 2 })).to.deep.equal([
      { topic: 'hypertcp/dev-2/up', qos: 1 },
    ])
    const r = await raw(0)
    r.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'htgw-qos2',
      clean: true,
      keepalive: 30,
    })
    expect(await r.packets.next()).to.include({ cmd: 'connack', returnCode: 0 })
    r.send({
      cmd: 'publish',
      topic: 'hypertcp/dev-2/up',
      payload: 'two',
      qos: 2,
      messageId: 7,
      retain: false,
      dup: false,
    })
    // A PUBACK where MQTT 3.1.1 says PUBREC; MQTT.js accepts it and settles the publish all the same.
    expect(await r.packets.next()).to.include({ cmd: 'puback', messageId: 7 })
    expect(await sub.inbox.next()).to.include({ topic: 'hypertcp/dev-2/up', text: 'two', qos: 1 })
  })

  it('keeps retained messages per node: a subscriber on node 2 does not get one retained on node 1', async () => {
    // The default store (rabbit_mqtt_retained_msg_store_dets) is local to each node and not
    // replicated: a retained status published through one node is invisible through the others.
    const pub = await client(0)
    await pub.client.publishAsync('hypertcp/dev-3/status', 'online', { qos: 1, retain: true })

    const here = await client(0)
    await here.client.subscribeAsync('hypertcp/dev-3/status', { qos: 1 })
    expect(await here.inbox.next()).to.deep.equal({
      topic: 'hypertcp/dev-3/status',
      text: 'online',
      qos: 1,
      retain: true,
    })

    const there = await client(1)
    await there.client.subscribeAsync('hypertcp/dev-3/status', { qos: 1 })
    // A retained message is sent right after the SUBACK; a plain one published after it comes
    // through the subscription's queue, later. So the first message must be this sentinel.
    const sentinel = await client(1)
    await sentinel.client.publishAsync('hypertcp/dev-3/status', 'sentinel', { qos: 1 })
    expect(await there.inbox.next()).to.include({ text: 'sentinel', retain: false })
  })

  it('closes the first connection when the same client id connects on the other node', async () => {
    // Client ids are tracked cluster-wide (a Raft group over all nodes): node 1 drops its client
    // ("disconnecting client ... with duplicate id") as node 2 accepts the newcomer.
    const first = await client(0, { clientId: 'htgw-same-id' })
    const closed = new Promise<void>((resolve) => first.client.once('close', () => resolve()))
    const second = await client(1, { clientId: 'htgw-same-id' })
    await closed
    expect(second.client.connected).to.equal(true)
  })

  // Last: it leaves the cluster with one node.
  it('keeps node 2 serving its MQTT clients after node 1 is SIGKILLed', async () => {
    const before = await client(1)
    await before.client.subscribeAsync('hypertcp/+/up', { qos: 1 })
    const pub = await client(1)
    const onNode1 = await client(0)
    const node1Gone = new Promise<void>((resolve) => onNode1.client.once('close', () => resolve()))

    await cluster.kill(0)
    await node1Gone
    expect(cluster.nodes[0]!.alive).to.equal(false)
    expect(await canConnect(cluster.nodes[0]!.mqttPort)).to.equal(false)

    // The subscription made before the kill lives on node 2 and still gets what node 2 routes.
    await pub.client.publishAsync('hypertcp/dev-4/up', 'after', { qos: 1 })
    expect(await before.inbox.next()).to.include({ topic: 'hypertcp/dev-4/up', text: 'after' })

    // New connections are accepted too. But with one of two nodes left, the client-id Raft
    // group has no quorum: from now on a duplicate client id is no longer kicked, on any node.
    const after = await client(1)
    await after.client.subscribeAsync('hypertcp/+/up', { qos: 1 })
    await pub.client.publishAsync('hypertcp/dev-5/up', 'later', { qos: 1 })
    expect(await after.inbox.next()).to.include({ topic: 'hypertcp/dev-5/up', text: 'later' })
    expect(await before.inbox.next()).to.include({ topic: 'hypertcp/dev-5/up', text: 'later' })
  })
})
