import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import mqtt, { type MqttClient } from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { CliProcess } from '../helpers/cli.js'
import { DEVICES, startGateway } from '../helpers/gateway.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { freePort } from '../helpers/net.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RawClient } from '../helpers/raw-client.js'

interface Up {
  d: string
  s: number
}

/** A persistent QoS 1 subscriber (clean: false): what it missed while away is delivered later. */
async function persistentSubscriber(
  url: string,
  topics: string[],
): Promise<{ client: MqttClient; got: Inbox<Up & { topic: string }> }> {
  const got = new Inbox<Up & { topic: string }>('persistent subscriber')
  const client = await mqtt.connectAsync(url, {
    clientId: `htgw-fault-sub-${process.pid}-${Date.now()}`,
    clean: false,
    reconnectPeriod: 100,
  })
  client.on('message', (topic, payload) => {
    try {
      got.push({ topic, ...(JSON.parse(payload.toString()) as Up) })
    } catch {
      /* presence and other bodies are not messages here */
    }
  })
  await client.subscribeAsync(topics, { qos: 1 })
  return { client, got }
}

/** Checks that every acked (device, seq) arrived, first arrivals in order per device; returns the duplicates. */
function verifyDelivery(acked: Map<string, number[]>, received: readonly Up[]): number {
  const firstSeen = new Map<string, number[]>()
  const seen = new Set<string>()
  let duplicates = 0
  for (const m of received) {
    const key = `${m.d}:${m.s}`
    if (seen.has(key)) {
      duplicates++
      continue
    }
    seen.add(key)
    const list = firstSeen.get(m.d) ?? []
    list.push(m.s)
    firstSeen.set(m.d, list)
  }
  for (const [device, seqs] of acked) {
    const missing = seqs.filter((s) => !seen.has(`${device}:${s}`))
    expect(missing, `acknowledged but never delivered (${device})`).to.deep.equal([])
    const order = firstSeen.get(device) ?? []
    expect(order, `per-device order (${device})`).to.deep.equal([...order].sort((a, b) => a - b))
  }
  return duplicates
}

describe('faults: the external broker dies mid-stream (kill -9) and comes back', function () {
  this.timeout(60_000)
  let mosquitto: Mosquitto
  let gw: Gateway

  before(async function () {
    requireMosquitto(this)
    mosquitto = await Mosquitto.start({ persistent: true })
    // Devices stream as fast as they can here: no per-device rate.
    gw = await startGateway({ mqttUrl: mosquitto.url, mqttReconnectPeriod: 0.2, messageRate: 0 })
  })
  after(async () => {
    await gw?.close()
    await mosquitto?.dispose()
  })

  it('delivers every acknowledged message at least once, in order per device; reconnects, re-subscribes, republishes presence', async () => {
    const sub = await persistentSubscriber(mosquitto.url, ['hypertcp/+/up', 'hypertcp/+/status'])
    await mosquitto.save() // the subscriber's session is on disk before the broker dies
    const presence = new Inbox<{ topic: string; online: boolean; at: number }>('presence')
    sub.client.on('message', (topic, payload) => {
      if (topic.endsWith('/status')) presence.push({ topic, ...JSON.parse(payload.toString()) })
    })
    const devices = await Promise.all(
      ['tok-1', 'tok-2', 'tok-3'].map(async (token) => {
        const c = await RawClient.connect(gw.port)
        expect(await c.login(token)).to.equal(Status.SUCCESS)
        return c
      }),
    )
    const ids = ['dev-1', 'dev-2', 'dev-3']
    const acked = new Map<string, number[]>(ids.map((d) => [d, []]))
    const N = 400
    const answered = devices.map(async (c, i) => {
      const id = ids[i]!
      for (let s = 1; s <= N; s++) {
        c.sendFrame(Cmd.JSON_MESSAGE, s, { targetId: 'server', payload: { d: id, s } })
        if (s % 20 === 0) await new Promise((r) => setTimeout(r, 10))
      }
      for (let s = 1; s <= N; s++) {
        const status = await c.response(s, 30_000)
        if (status === 0) acked.get(id)!.push(s)
      }
    })
    // Mid-stream: the broker is killed, and restarted a moment later on the same port.
    await waitUntil(() => sub.got.history.length > 100, 'the stream is flowing', 10_000)
    const killedAt = Date.now()
    await mosquitto.stop('SIGKILL')
    await waitUntil(() => !gw.mqttConnected, 'the gateway notices the outage')
    await new Promise((r) => setTimeout(r, 500))
    await mosquitto.run()
    await Promise.all(answered)
    const total = [...acked.values()].reduce((n, a) => n + a.length, 0)
    expect(total).to.equal(3 * N) // nothing was refused: the outage fit in the buffer
    await waitUntil(
      () => new Set(sub.got.history.map((m) => `${m.d}:${m.s}`)).size >= total,
      'every message arrived',
      20_000,
    ).catch(() => undefined) // verifyDelivery names what is missing
    const duplicates = verifyDelivery(acked, sub.got.history)
    console.log(`      ${total} acknowledged, all delivered; ${duplicates} duplicates (at least once)`)
    // The gateway reconnected by itself, republished presence, and re-subscribed the down topics.
    for (const id of ids) {
      await presence.take((p) => p.topic === `hypertcp/${id}/status` && p.online && p.at > killedAt, 10_000)
    }
    await sub.client.publishAsync('hypertcp/dev-2/dn', '{"after":"outage"}', { qos: 1 })
    const f = await devices[1]!.frames.take((x) => x.type === Cmd.JSON_MESSAGE, 10_000)
    expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { after: 'outage' } })
    for (const c of devices) c.destroy()
    await sub.client.endAsync()
  })
})

describe('faults: the gateway process is stopped', function () {
  this.timeout(60_000)
  let mosquitto: Mosquitto
  let configPath: string

  before(async function () {
    requireMosquitto(this)
    mosquitto = await Mosquitto.start()
    configPath = join(tmpdir(), `htgw-faults-${process.pid}.json`)
    writeFileSync(configPath, JSON.stringify({ devices: DEVICES, logLevel: 'warn', gatewayId: 'gw-faults' }))
  })
  after(async () => {
    await mosquitto?.dispose()
  })

  async function startCli(port: number, wrapper: string[] = []): Promise<CliProcess> {
    const gw = CliProcess.start(
      [
        '--config',
        configPath,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--mqtt-url',
        mosquitto.url,
        '--log-level',
        'info',
      ],
      {},
      wrapper,
    )
    await gw.match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/)
    return gw
  }

  it('on SIGTERM: what devices sent is published and acknowledged before it exits 0', async () => {
    const gw = await startCli(0)
    const port = Number(
      (gw.lines.history.join('\n').match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/) ?? [])[1],
    )
    const w = await MqttWatcher.connect(mosquitto.url, ['hypertcp/dev-1/up', 'hypertcp/dev-1/status'])
    try {
      const c = await RawClient.connect(port)
      expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
      for (let s = 1; s <= 500; s++)
        c.sendFrame(Cmd.JSON_MESSAGE, s, { targetId: 'server', payload: { d: 'dev-1', s } })
      await c.response(1)
      gw.kill('SIGTERM')
      await c.waitClosed(10_000)
      expect(await gw.exited).to.equal(0)
      const acked = c.frames.history
        .filter((f) => f.type === Cmd.RESPONSE && f.length === 0)
        .map((f) => f.msgId)
      expect(acked.length).to.be.greaterThan(0)
      for (const s of acked) await w.json('hypertcp/dev-1/up', (p) => p.s === s)
      expect(
        await w.json<{ online: boolean; reason?: string }>('hypertcp/dev-1/status', (p) => !p.online),
      ).to.deep.include({
        reason: 'shutdown',
      })
      console.log(
        `      ${acked.length} of 500 pipelined messages acknowledged before the shutdown, all published`,
      )
    } finally {
      await w.end()
    }
  })

  it('on SIGKILL: the broker publishes its last will; after a restart on the same port devices log in again', async () => {
    const port = await freePort()
    const w = await MqttWatcher.connect(mosquitto.url, [
      'hypertcp/$gateway/gw-faults/status',
      'hypertcp/dev-2/up',
    ])
    let gw = await startCli(port)
    try {
      const d = await OriginalDevice.connect(port, 'tok-2', { pingIntervalMs: 0 })
      expect(d.loginStatus).to.equal(200)
      gw.kill('SIGKILL')
      await gw.exited
      await d.closed
      await w.json(
        'hypertcp/$gateway/gw-faults/status',
        (p) => p.online === false && p.reason === 'connection_lost',
      )
      gw = await startCli(port)
      const again = await OriginalDevice.connect(port, 'tok-2', { pingIntervalMs: 0 })
      expect(again.loginStatus).to.equal(200)
      again.sendToServer({ back: true })
      expect(await w.json('hypertcp/dev-2/up')).to.deep.equal({ back: true })
      again.destroy()
    } finally {
      gw.kill('SIGKILL')
      await gw.exited
      await w.end()
    }
  })

  it('survives running out of file descriptors (EMFILE) and serves again afterwards', async () => {
    const port = await freePort()
    const gw = await startCli(port, ['prlimit', '--nofile=80:80'])
    try {
      const flood = await Promise.all(
        Array.from({ length: 150 }, () => RawClient.connect(port).catch(() => undefined)),
      )
      // The OS drops what does not fit; some of the flood was closed at once.
      await waitUntil(
        () => flood.some((c) => c === undefined || c.isClosed),
        'connections past the limit are dropped',
      )
      for (const c of flood) c?.destroy()
      // A device retries, as it would after any failed connection, until the gateway has let
      // go of the flood's descriptors.
      const deadline = Date.now() + 10_000
      let device: OriginalDevice | undefined
      while (device?.loginStatus !== 200) {
        if (Date.now() > deadline) throw new Error('no login after the flood')
        device = await OriginalDevice.connect(port, 'tok-3', { pingIntervalMs: 0 }).catch(() => undefined)
        if (device?.loginStatus !== 200) await new Promise((r) => setTimeout(r, 100))
      }
      device.destroy()
      expect(gw.child.exitCode).to.equal(null)
    } finally {
      gw.kill('SIGKILL')
      await gw.exited
    }
  })
})

describe('faults: devices that vanish', () => {
  it('cleans up a connection reset in the middle of a frame', async () => {
    const gw = await startGateway()
    try {
      const c = await RawClient.connect(gw.port)
      expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
      // Announces 100 body bytes, sends 41, and makes sure they left before the reset.
      await new Promise((resolve) =>
        c.socket.write(Buffer.concat([Buffer.from('1e00020064', 'hex'), Buffer.alloc(41, 0x20)]), resolve),
      )
      c.socket.resetAndDestroy()
      await waitUntil(() => gw.stats().open === 0, 'the connection is gone')
      expect(gw.stats().closes).to.deep.equal({ socket_error: 1 })
      expect(gw.stats().online).to.equal(0)
    } finally {
      await gw.close()
    }
  })
})
