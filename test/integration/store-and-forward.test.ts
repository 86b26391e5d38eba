/**
 * Store-and-forward and at-least-once delivery (issue 19.1, 19.2): messages for a device that is
 * not connected are kept and delivered in order at its login; a downlink leaves the store when the
 * device acknowledges it, and what a closed connection had not acknowledged is sent again.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import mqtt from 'mqtt'
import { openPersistence, STORE_FILE } from '../../src/adapters/sqlite-store.js'
import { DownlinkStore } from '../../src/delivery/store.js'
import type { Gateway, GatewayOptions } from '../../src/gateway/gateway.js'
import { silentLogger } from '../../src/log.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { useCleanups } from '../helpers/cleanups.js'
import { CliProcess, requireBuild } from '../helpers/cli.js'
import { BROKER_ADMIN, DEVICES, PEER_GATEWAY, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { type Frame, RawClient, trackRawClients } from '../helpers/raw-client.js'

describe('store-and-forward downlinks, at least once to the device', function () {
  this.timeout(20_000)
  const { track } = trackRawClients()
  const cleanups = useCleanups()

  async function gateway(options: GatewayOptions = {}): Promise<Gateway> {
    const gw = await startGateway({ offlineQueueMessages: 100, ...options })
    cleanups.push(() => gw.close()) // idempotent: a test may have closed it
    return gw
  }

  async function app(gw: Gateway): Promise<MqttWatcher> {
    const w = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
    cleanups.push(() => w.end())
    return w
  }

  async function device(gw: Gateway, token: string): Promise<RawClient> {
    const c = await track(RawClient.connect(gw.port))
    expect(await c.login(token)).to.equal(Status.SUCCESS)
    return c
  }

  /** The next `n` downlinks' payloads, and their frames (to acknowledge). */
  async function downlinks(c: RawClient, n: number): Promise<{ payloads: unknown[]; frames: Frame[] }> {
    const frames: Frame[] = []
    for (let k = 0; k < n; k++) frames.push(await c.frames.take((f) => f.type === Cmd.JSON_MESSAGE))
    return { payloads: frames.map((f) => (JSON.parse(f.text) as { payload: unknown }).payload), frames }
  }

  const ack = (c: RawClient, f: Frame) => c.sendFrame(Cmd.RESPONSE, f.msgId)

  it('keeps messages for a registry device that never logged in, and delivers them in order at its login', async () => {
    const gw = await gateway({ adminPort: 0 })
    const w = await app(gw)
    for (let n = 1; n <= 3; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ n }))
    expect(gw.stats().keptNow).to.equal(3)
    const c = await device(gw, 'tok-3')
    const got = await downlinks(c, 3)
    expect(got.payloads).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }])
    // Live messages follow, after the kept ones.
    await w.publish('hypertcp/dev-3/dn', '{"n":4}')
    expect((await downlinks(c, 1)).payloads).to.deep.equal([{ n: 4 }])
    // Acknowledged, they leave the store.
    for (const f of got.frames) ack(c, f)
    await waitUntil(() => gw.stats().keptNow === 1, 'three acknowledged, one left')
    expect(gw.stats().keptAcknowledged).to.equal(3)
    const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
    for (const line of [
      'hypertcp_downlinks_kept_total{event="kept"} 4',
      'hypertcp_downlinks_kept_total{event="acknowledged"} 3',
      'hypertcp_downlinks_stored 1',
    ])
      expect(metrics.split('\n')).to.include(line)
  })

  it('keeps for a device added by a registry reload from then on', async () => {
    const gw = await gateway()
    const w = await app(gw)
    gw.reload({ ...gw.config, devices: [...gw.config.devices, { id: 'dev-new', token: 'tok-new' }] })
    // Its down topic is subscribed by the broker work the reload asked for: wait for what proves it.
    for (let k = 0; gw.stats().keptNow === 0; k++) {
      if (k === 100) throw new Error('no message for the new device was kept')
      await w.publish('hypertcp/dev-new/dn', '{"probe":true}')
    }
    const c = await device(gw, 'tok-new')
    const first = (await downlinks(c, 1)).payloads[0]
    expect(first).to.deep.equal({ probe: true })
  })

  it('sends again, in order, what a closed connection had not acknowledged; never what it had', async () => {
    const gw = await gateway()
    const w = await app(gw)
    const first = await device(gw, 'tok-3')
    for (let n = 1; n <= 3; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ n }))
    const got = await downlinks(first, 3)
    ack(first, got.frames[0]!)
    await waitUntil(() => gw.stats().keptAcknowledged === 1, 'the first acknowledged')
    first.destroy()
    await waitUntil(() => gw.stats().online === 0, 'the device is gone')
    const again = await device(gw, 'tok-3')
    expect((await downlinks(again, 2)).payloads).to.deep.equal([{ n: 2 }, { n: 3 }])
  })

  it('with downlinkDelivery at-most-once, sends once: nothing again after a connection loss', async () => {
    const gw = await gateway({ downlinkDelivery: 'at-most-once' })
    const w = await app(gw)
    await w.publish('hypertcp/dev-3/dn', '{"offline":1}')
    const first = await device(gw, 'tok-3')
    expect((await downlinks(first, 1)).payloads).to.deep.equal([{ offline: 1 }])
    await w.publish('hypertcp/dev-3/dn', '{"online":2}')
    expect((await downlinks(first, 1)).payloads).to.deep.equal([{ online: 2 }])
    expect(gw.stats().keptNow).to.equal(0)
    first.destroy()
    await waitUntil(() => gw.stats().online === 0, 'the device is gone')
    const again = await device(gw, 'tok-3')
    await w.publish('hypertcp/dev-3/dn', '{"sentinel":3}')
    expect((await downlinks(again, 1)).payloads).to.deep.equal([{ sentinel: 3 }])
  })

  it('drops the oldest past offlineQueueMessages, counted and logged, and refuses what is not JSON before storing it', async () => {
    const log = captureLogger()
    const gw = await gateway({ offlineQueueMessages: 3, logger: log.logger })
    const w = await app(gw)
    for (let n = 1; n <= 5; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ n }))
    await w.publish('hypertcp/dev-3/dn', 'not json')
    expect(gw.stats().droppedBy).to.deep.include({ kept_queue_full: 2, not_json: 1 })
    expect(log.lines.some((l) => l.includes('kept downlink dropped') && l.includes('dev-3'))).to.equal(true)
    const c = await device(gw, 'tok-3')
    expect((await downlinks(c, 3)).payloads).to.deep.equal([{ n: 3 }, { n: 4 }, { n: 5 }])
  })

  it('keeps nothing for a device it does not know (neither in the registry nor served here)', async () => {
    const gw = await gateway()
    const w = await app(gw)
    await w.publish('hypertcp/stranger/dn', '{"lost":1}')
    await w.publish('hypertcp/dev-3/dn', '{"kept":1}')
    await waitUntil(() => gw.stats().kept === 1, 'the registry device message kept')
    expect(gw.stats().keptNow).to.equal(1)
  })

  describe('takeovers by another instance (issue 17)', () => {
    it('marks the device offline (takeover_unconfirmed) when the instance that took it over never announces it', async () => {
      const gw = await gateway({ adminPort: 0 })
      const peer = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/dev-3/status'], PEER_GATEWAY)
      cleanups.push(() => peer.end())
      const c = await device(gw, 'tok-3')
      await peer.json('hypertcp/dev-3/status', (p) => p.online === true)
      // A gateway that announces a takeover, then dies before it says the device is online there.
      const notice = { action: 'takeover', gateway: 'gone-gw', session: 'x', at: Date.now() + 1000 }
      await peer.publish('hypertcp/dev-3/ctl', JSON.stringify(notice))
      await c.waitClosed()
      const marked = await peer.json(
        'hypertcp/dev-3/status',
        (p) => p.reason === 'takeover_unconfirmed',
        10_000,
      )
      expect(marked).to.deep.include({ online: false, gateway: gw.config.gatewayId, by: 'gone-gw' })
      expect(gw.stats().takeovers).to.deep.equal({ unconfirmed: 1 })
      const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text()
      expect(metrics.split('\n')).to.include('hypertcp_takeovers_total{result="unconfirmed"} 1')
    })

    it('leaves the presence to the instance that took the device over when it announces it', async () => {
      const a = await gateway()
      const b = await gateway({
        mqttUrl: [a.mqttUrl],
        mqttUsername: PEER_GATEWAY.username,
        mqttPassword: PEER_GATEWAY.password,
        mqttConnections: 1,
      })
      const onA = await device(a, 'tok-3')
      await device(b, 'tok-3')
      await onA.waitClosed()
      await waitUntil(() => a.stats().takeovers.confirmed === 1, 'A saw B announce the device')
      expect(a.stats().takeovers).to.deep.equal({ confirmed: 1 })
    })
  })

  describe('on disk (dataDir)', () => {
    let dir: string
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypertcp-store-'))
    })
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

    it('keeps what was kept across a restart', async () => {
      const gw = await gateway({ dataDir: dir })
      const w = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
      for (let n = 1; n <= 2; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ n }))
      await w.end()
      await gw.close()
      expect(fs.existsSync(path.join(dir, STORE_FILE))).to.equal(true)
      const next = await gateway({ dataDir: dir })
      expect(next.stats().keptNow).to.equal(2)
      const c = await device(next, 'tok-3')
      expect((await downlinks(c, 2)).payloads).to.deep.equal([{ n: 1 }, { n: 2 }])
    })

    it('writes what one turn kept as one row; a clean close leaves out what was acknowledged since', async () => {
      const limits = { messages: 100, bytes: 65_536, totalBytes: 1 << 20, ttlMs: 60_000 }
      const open = () => new DownlinkStore(openPersistence(dir, silentLogger), limits, () => {})
      const store = open()
      store.load()
      const kept = ['a', 'b', 'c'].map((m) => store.keep('dev-3', Buffer.from(m), Date.now()))
      await new Promise<void>((resolve) => store.whenWritten(resolve))
      store.remove(kept[1]!) // acknowledged: the row still holds a and c
      store.close()
      const again = open()
      again.load()
      expect(again.pending('dev-3').map((k) => k.body.toString())).to.deep.equal(['a', 'c'])
      again.close()
    })

    it('moves a corrupt store aside, says so with its path, and starts with an empty one that works', async () => {
      const file = path.join(dir, STORE_FILE)
      fs.writeFileSync(file, 'this is not SQLite'.repeat(100))
      const log = captureLogger()
      const gw = await gateway({ dataDir: dir, logger: log.logger })
      const line = log.lines.find((l) => l.includes('downlink store unreadable'))
      expect(line).to.contain(file)
      const aside = fs.readdirSync(dir).filter((f) => f.startsWith(`${STORE_FILE}.bad-`))
      expect(aside).to.have.length(1)
      expect(fs.readFileSync(path.join(dir, aside[0]!), 'utf8')).to.contain('this is not SQLite')
      const w = await app(gw)
      await w.publish('hypertcp/dev-3/dn', '{"fresh":true}')
      const c = await device(gw, 'tok-3')
      expect((await downlinks(c, 1)).payloads).to.deep.equal([{ fresh: true }])
    })

    it('survives a SIGKILL: what the publisher was acknowledged is delivered after a restart', async () => {
      requireBuild()
      const config = path.join(dir, 'gateway.json')
      fs.writeFileSync(config, JSON.stringify({ devices: [{ id: 'dev-9', token: 'tok-9' }] }))
      const args = ['--config', config, '--data-dir', path.join(dir, 'data')]
      const first = await CliProcess.standalone(args)
      try {
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.mqttPort}`, { reconnectPeriod: 0 })
        // QoS 1: each resolves on the PUBACK, which the gateway lets go once the message is on disk.
        for (let n = 1; n <= 3; n++)
          await client.publishAsync('hypertcp/dev-9/dn', JSON.stringify({ n }), { qos: 1 })
        first.gw.kill('SIGKILL')
        await first.gw.exited
        client.end(true)
      } finally {
        if (first.gw.child.exitCode === null) first.gw.kill('SIGKILL')
      }
      const second = await CliProcess.standalone(args)
      try {
        const c = await device({ port: second.port } as Gateway, 'tok-9')
        expect((await downlinks(c, 3)).payloads).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }])
      } finally {
        second.gw.kill('SIGTERM')
        await second.gw.exited
      }
    })
  })

  it('hands the queue over when the device logs in on another instance, in order, through the broker', async () => {
    // Instance A with the embedded broker, instance B on it as an external one.
    const a = await gateway()
    const w = await app(a)
    const d1 = await device(a, 'tok-3')
    d1.destroy()
    await waitUntil(() => a.stats().online === 0, 'the device left A')
    for (let n = 1; n <= 3; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ n }))
    expect(a.stats().keptNow).to.equal(3)
    const b = await gateway({
      mqttUrl: [a.mqttUrl],
      mqttUsername: PEER_GATEWAY.username,
      mqttPassword: PEER_GATEWAY.password,
      mqttConnections: 1,
    })
    expect(b.stats().keptNow).to.equal(0) // it was not there when they were published
    const d2 = await device(b, 'tok-3')
    expect((await downlinks(d2, 3)).payloads).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 3 }])
    expect(a.stats()).to.deep.include({ keptNow: 0, handedOver: 3 })
  })

  describe('with an external broker (Mosquitto)', () => {
    let mosquitto: Mosquitto
    before(async function () {
      requireMosquitto(this)
      mosquitto = await Mosquitto.start()
    })
    after(() => mosquitto?.dispose())

    it('leaves a device to the instance that served it last (its retained presence says so): each message once', async () => {
      const on = (gatewayId: string) => ({ mqttUrl: [mosquitto.url], gatewayId, mqttConnections: 1 })
      const b = await gateway(on('sf-last-b'))
      const d1 = await device(b, 'tok-1')
      d1.destroy()
      await waitUntil(() => b.stats().online === 0, 'the device left B')
      // A starts after: it reads the retained presence (offline, at B) of its registry's devices.
      const a = await gateway(on('sf-last-a'))
      const w = await MqttWatcher.connect(mosquitto.url)
      cleanups.push(() => w.end())
      await w.publish('hypertcp/dev-1/dn', '{"m":1}')
      await waitUntil(() => b.stats().keptNow === 1, 'B keeps it')
      expect(a.stats().kept).to.equal(0)
      const d2 = await device(a, 'tok-1')
      expect((await downlinks(d2, 1)).payloads).to.deep.equal([{ m: 1 }]) // handed over by B
      await w.publish('hypertcp/dev-1/dn', '{"m":2}')
      expect((await downlinks(d2, 1)).payloads).to.deep.equal([{ m: 2 }]) // and no second copy before it
    })

    it('keeps its MQTT session: what is published while the gateway is down waits at the broker', async () => {
      const options = { mqttUrl: [mosquitto.url], gatewayId: 'sf-persistent', mqttConnections: 1 }
      const first = await gateway(options)
      await first.close()
      const w = await MqttWatcher.connect(mosquitto.url)
      cleanups.push(() => w.end())
      for (let n = 1; n <= 2; n++) await w.publish('hypertcp/dev-3/dn', JSON.stringify({ while: 'down', n }))
      const second = await gateway(options)
      await waitUntil(
        () => second.stats().keptNow === 2,
        'the broker delivered what it held, and it was kept',
      )
      const c = await device(second, 'tok-3')
      expect((await downlinks(c, 2)).payloads).to.deep.equal([
        { while: 'down', n: 1 },
        { while: 'down', n: 2 },
      ])
    })

    it('ends a subscription its session kept for a device it no longer holds', async () => {
      // Closing, the gateway leaves its subscriptions to the session (the connection is going);
      // started again without dev-4 in its registry, it no longer wants dev-4's down topic.
      const options = { mqttUrl: [mosquitto.url], gatewayId: 'sf-left-over', mqttConnections: 1 }
      await (await gateway(options)).close()
      const second = await gateway({ ...options, devices: DEVICES.filter((d) => d.id !== 'dev-4') })
      const w = await MqttWatcher.connect(mosquitto.url)
      cleanups.push(() => w.end())
      await w.publish('hypertcp/dev-4/dn', '{"n":1}')
      await waitUntil(() => second.stats().subscriptionsLeftOver === 1, 'the left-over subscription seen')
      // A login's SUBSCRIBE, answered after the UNSUBSCRIBE on the one connection: from then on a
      // message for dev-4 would come before one for dev-3 published after it, and be seen.
      const c = await device(second, 'tok-3')
      await w.publish('hypertcp/dev-4/dn', '{"n":2}')
      await w.publish('hypertcp/dev-3/dn', '{"n":3}')
      expect((await downlinks(c, 1)).payloads).to.deep.equal([{ n: 3 }])
      expect(second.stats().subscriptionsLeftOver).to.equal(1)
    })
  })
})
