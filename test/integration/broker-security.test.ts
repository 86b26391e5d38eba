import { readFileSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { expect } from 'chai'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { WebSocket } from 'ws'
import { hashPassword } from '../../src/auth/passwords.js'
import { resolveConfig } from '../../src/config/resolve.js'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { CliProcess, requireBuild, runCli } from '../helpers/cli.js'
import { BROKER_ADMIN, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

// Issue 17: the attacks of a client on the same network, each a test.

const { track } = trackRawClients()

/** The resident set of a process, bytes (Linux). */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(kb![1]) * 1024
}

function rawMqtt(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
  })
}

describe('broker security: local only unless configured', () => {
  it('refuses to open the embedded broker beyond loopback without broker users (exit 2, how to add them)', () => {
    requireBuild()
    const r = runCli(['--broker-host', '0.0.0.0', '--port', '0', '--broker-port', '0', '--admin-port', 'off'])
    expect(r.status).to.equal(2)
    expect(r.stderr)
      .to.contain('brokerHost')
      .and.contain('0.0.0.0, beyond this machine, with no broker users')
  })
})

/** MQTT clients of a test, ended after it. */
const clients: MqttClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true)
})

async function client(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  clients.push(c)
  return c
}

/** The CONNACK return code a login gets (0 = accepted; -1: closed without one). */
function connackCode(url: string, options: IClientOptions = {}): Promise<number> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
    clients.push(c)
    c.once('connect', () => resolve(0))
    c.once('error', (err) => resolve((err as { code?: number }).code ?? -1))
    // MQTT.js's connectAsync never settles for a connection closed before CONNACK.
    c.once('close', () => resolve(-1))
  })
}

/** Publishes and tells whether the broker took it (PUBACK) or closed the client for it. */
function published(c: MqttClient, topic: string, message: string, retain = false): Promise<boolean> {
  return new Promise((resolve) => {
    c.once('close', () => resolve(false))
    c.publish(topic, message, { qos: 1, retain }, (err) => {
      if (!err) resolve(true)
    })
  })
}

/** The QoS granted to one filter (128 = refused). */
async function granted(c: MqttClient, filter: string): Promise<number> {
  try {
    const [g] = await c.subscribeAsync(filter, { qos: 1 })
    return g!.qos
  } catch (err) {
    // MQTT.js rejects a subscription the broker refused; the SUBACK is on the error.
    const codes = (err as { packet?: { granted?: number[] } }).packet?.granted
    if (codes === undefined) throw err
    return codes[0]!
  }
}

const APP = { username: 'dashboard', password: 'app-secret' }
const MONITOR = { username: 'grafana', password: 'monitor-secret' }

describe('broker security: users and roles on the embedded broker', function () {
  this.timeout(30_000)
  let gw: Gateway
  let url: string
  let hashed: string
  before(async () => {
    hashed = await hashPassword(MONITOR.password)
    gw = await startGateway({
      brokerUsers: [
        { ...APP, role: 'app' },
        { username: MONITOR.username, passwordHash: hashed, role: 'monitor' },
        { ...BROKER_ADMIN, role: 'admin' },
      ],
    })
    url = gw.mqttUrl
  })
  after(() => gw.close())

  it('refuses an anonymous redirect, kick or forged takeover: the device stays (the one-publish token theft)', async () => {
    const device = await track(RawClient.connect(gw.port!))
    expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
    for (const action of [
      { action: 'redirect', server: '127.0.0.1', port: 19999 },
      { action: 'kick' },
      { action: 'takeover', gateway: 'evil', session: 'x', at: Date.now() + 1e6 },
    ]) {
      const anonymous = await client(url)
      expect(
        await published(anonymous, 'hypertcp/dev-1/ctl', JSON.stringify(action)),
        action.action,
      ).to.equal(false)
    }
    // An admin may kick and redirect, but not announce a takeover: only gateways do.
    const admin = await client(url, BROKER_ADMIN)
    const takeover = { action: 'takeover', gateway: 'evil', session: 'x', at: Date.now() + 1e6 }
    expect(await published(admin, 'hypertcp/dev-1/ctl', JSON.stringify(takeover))).to.equal(false)
    device.sendFrame(Cmd.PING, 9)
    expect(await device.response(9), 'the device is still served').to.equal(0)
    const admin2 = await client(url, BROKER_ADMIN)
    expect(await published(admin2, 'hypertcp/dev-1/ctl', '{"action":"kick"}')).to.equal(true)
    await device.waitClosed()
  })

  it('lets an app read uplinks, presence and broadcasts, not dn or ctl, whatever the filter ($share, #)', async () => {
    const app = await client(url, APP)
    expect(await granted(app, 'hypertcp/+/ctl')).to.equal(128)
    expect(await granted(app, '$share/g/hypertcp/+/dn')).to.equal(128)
    expect(await granted(app, '$SYS/#')).to.equal(128)
    expect(await granted(app, 'hypertcp/#')).to.equal(1)
    const seen: string[] = []
    app.on('message', (topic) => seen.push(topic))
    const admin = await client(url, BROKER_ADMIN)
    // dn and ctl of a device that is not here (nothing happens), then a broadcast as a marker.
    await admin.publishAsync('hypertcp/nobody/dn', '{"x":1}', { qos: 1 })
    await admin.publishAsync('hypertcp/nobody/ctl', '{"action":"kick"}', { qos: 1 })
    await admin.publishAsync('hypertcp/broadcast', '{"marker":1}', { qos: 1 })
    const device = await track(RawClient.connect(gw.port!))
    expect(await device.login('tok-3')).to.equal(Status.SUCCESS)
    device.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { t: 1 } })
    expect(await device.response(2)).to.equal(0)
    await waitUntil(() => seen.includes('hypertcp/dev-3/up'), 'the uplink seen')
    expect(seen).to.include('hypertcp/broadcast').and.include('hypertcp/dev-3/status')
    expect(seen.filter((t) => t.endsWith('/dn') || t.endsWith('/ctl'))).to.deep.equal([])
  })

  it('lets nobody but the gateway publish uplinks, presence or gateway status; a monitor publishes nothing', async () => {
    for (const [login, topic, retain] of [
      [APP, 'hypertcp/dev-1/up', false],
      [APP, 'hypertcp/dev-1/status', true],
      [BROKER_ADMIN, 'hypertcp/dev-1/status', true],
      [BROKER_ADMIN, 'hypertcp/$gateway/gw-x/status', true],
      [MONITOR, 'hypertcp/dev-1/dn', false],
      [MONITOR, 'lab/anything', false],
    ] as const) {
      const c = await client(url, login)
      expect(await published(c, topic, '{"online":true}', retain), `${login.username} → ${topic}`).to.equal(
        false,
      )
    }
    const monitor = await client(url, MONITOR)
    expect(await granted(monitor, '$SYS/#')).to.equal(1)
    expect(await granted(monitor, 'hypertcp/+/up')).to.equal(1)
  })

  it('names the sender of a device-to-device envelope: its username, or server when anonymous', async () => {
    const device = await track(RawClient.connect(gw.port!))
    expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
    const forged = JSON.stringify({ from: 'dev-2', payload: { command: 'unlock' } })
    await (await client(url, APP)).publishAsync('hypertcp/dev-1/dn', forged, { qos: 1 })
    await (await client(url)).publishAsync('hypertcp/dev-1/dn', forged, { qos: 1 })
    const froms: unknown[] = []
    for (let i = 0; i < 2; i++) {
      const f = await device.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
      froms.push((JSON.parse(f.text) as { from: string }).from)
    }
    expect(froms).to.deep.equal(['dashboard', 'server'])
  })

  it('refuses wrong passwords (CONNACK 4) and, from this machine only, takes anonymous clients as app', async () => {
    expect(await connackCode(url, { username: MONITOR.username, password: 'guess' })).to.equal(4)
    expect(await connackCode(url, { username: 'nobody', password: 'x' })).to.equal(4)
    expect(await connackCode(url, MONITOR)).to.equal(0)
    expect(await connackCode(url)).to.equal(0)
  })
})

describe('broker security: peer topics on the embedded broker too', function () {
  this.timeout(30_000)

  it("lets only gateways write them; devices' messages and broadcasts still carry their sender", async () => {
    const gw = await startGateway({
      brokerUsers: [
        { ...APP, role: 'app' },
        { ...BROKER_ADMIN, role: 'admin' },
      ],
      topics: { peer: 'hypertcp/%c/peer', peerBroadcast: 'hypertcp/$peers/broadcast' },
    })
    try {
      const one = await track(RawClient.connect(gw.port!))
      const two = await track(RawClient.connect(gw.port!))
      expect(await one.login('tok-1')).to.equal(Status.SUCCESS)
      expect(await two.login('tok-2')).to.equal(Status.SUCCESS)
      one.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'dev-2', payload: { hi: 1 } })
      expect(await one.response(2)).to.equal(0)
      const message = await two.frames.take((f) => f.type === Cmd.JSON_MESSAGE)
      expect(JSON.parse(message.text)).to.deep.equal({ from: 'dev-1', payload: { hi: 1 } })
      two.sendFrame(Cmd.BROADCAST, 3, { targetId: 'broadcast', payload: { all: 1 } })
      const broadcast = await one.frames.take((f) => f.type === Cmd.BROADCAST)
      expect(JSON.parse(broadcast.text)).to.deep.equal({ from: 'dev-2', payload: { all: 1 } })
      for (const login of [APP, BROKER_ADMIN, undefined]) {
        const c = await client(gw.mqttUrl, login ?? {})
        expect(
          await published(c, 'hypertcp/dev-1/peer', '{"from":"dev-2","payload":{}}'),
          login?.username ?? 'anonymous',
        ).to.equal(false)
      }
      const admin = await client(gw.mqttUrl, BROKER_ADMIN)
      expect(await published(admin, 'hypertcp/$peers/broadcast', '{"from":"dev-2","payload":{}}')).to.equal(
        false,
      )
    } finally {
      await gw.close()
    }
  })
})

describe('broker security: anonymous clients and the network', function () {
  this.timeout(30_000)

  it("refuses WebSocket connections from other origins' pages (brokerWsOrigins), not from clients that send none", async () => {
    const gw = await startGateway({ brokerWsPort: 0, brokerWsOrigins: ['https://app.example'] })
    try {
      const url = `ws://127.0.0.1:${gw.brokerWsPort}`
      /** The handshake's answer: 101 (open) or the HTTP status of the refusal. */
      const handshake = (headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(url, 'mqtt', { headers })
          ws.on('open', () => {
            ws.terminate()
            resolve(101)
          })
          ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
          ws.on('error', reject)
        })
      // A page on evil.example in a LAN user's browser: refused at the handshake.
      expect(await handshake({ Origin: 'http://evil.example' })).to.equal(403)
      expect(await handshake({ Origin: 'https://app.example' })).to.equal(101)
      expect(await handshake({})).to.equal(101) // no Origin: not a browser
      // And MQTT over it, from an allowed page.
      expect(await connackCode(url, { wsOptions: { headers: { Origin: 'https://app.example' } } })).to.equal(
        0,
      )
    } finally {
      await gw.close()
    }
  })

  it('refuses anonymous clients from another address (CONNACK 5), and all of them with anonymousRole none', async () => {
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address
    const gw = await startGateway({ brokerHost: '0.0.0.0', brokerUsers: [{ ...APP, role: 'app' }] })
    try {
      if (lan === undefined) {
        console.log('      (no non-loopback IPv4 address on this machine: the remote case is not tried)')
      } else {
        expect(await connackCode(`mqtt://${lan}:${gw.brokerPort}`)).to.equal(5)
        expect(await connackCode(`mqtt://${lan}:${gw.brokerPort}`, APP)).to.equal(0)
      }
      expect(await connackCode(`mqtt://127.0.0.1:${gw.brokerPort}`)).to.equal(0)
    } finally {
      await gw.close()
    }
    const closed = await startGateway({ anonymousRole: 'none' })
    try {
      expect(await connackCode(closed.mqttUrl)).to.equal(5)
    } finally {
      await closed.close()
    }
  })

  it('reads users from brokerUsersFile (HYPERTCP_BROKER_USERS_FILE), warns of plain passwords, never prints them', async () => {
    requireBuild()
    const file = join(tmpdir(), `htgw-users-${process.pid}.json`)
    writeFileSync(file, JSON.stringify([{ username: 'ops', password: 'PlAiN-7q', role: 'admin' }]))
    const printed = runCli(['--print-config'], { HYPERTCP_BROKER_USERS_FILE: file })
    expect(printed.status).to.equal(0)
    expect(printed.stdout).to.not.contain('PlAiN-7q')
    expect(JSON.parse(printed.stdout).brokerUsers).to.deep.equal([
      { username: 'ops', password: '***', role: 'admin' },
    ])
    const { gw, mqttPort } = await CliProcess.standalone(['--broker-users-file', file])
    try {
      await gw.match(/broker user "ops" has a plain-text password/)
      expect(
        await connackCode(`mqtt://127.0.0.1:${mqttPort}`, { username: 'ops', password: 'PlAiN-7q' }),
      ).to.equal(0)
    } finally {
      gw.kill()
      await gw.exited
    }
  })
})

describe('broker security: size before parse', function () {
  this.timeout(60_000)

  it("closes a client announcing a 200 MB publish before reading it; RSS and a device's PING latency hold", async () => {
    requireBuild()
    const { gw, port, mqttPort } = await CliProcess.standalone(['--config', 'config/gateway.example.json'])
    try {
      const device = await track(RawClient.connect(port))
      expect(await device.login('demo-token-sensor-1')).to.equal(Status.SUCCESS)
      const pid = gw.child.pid!
      // A healthy device pings all along; the worst round trip is kept.
      let worst = 0
      let pings = 0
      let running = true
      const pinger = (async () => {
        for (let id = 100; running; id++) {
          const t = performance.now()
          device.sendFrame(Cmd.PING, id)
          expect(await device.response(id)).to.equal(0)
          worst = Math.max(worst, performance.now() - t)
          pings++
        }
      })()
      await waitUntil(() => pings >= 20, 'the first pings')
      const before = rss(pid)

      const attacker = await rawMqtt(mqttPort)
      let closed = false
      attacker.on('close', () => (closed = true))
      attacker.on('error', () => {})
      attacker.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clientId: 'x',
          clean: true,
          keepalive: 60,
        }),
      )
      // PUBLISH to the broadcast topic, remaining length 200 MiB, then its body as fast as it goes.
      const total = 200 * 1024 * 1024
      const topic = Buffer.from('hypertcp/broadcast')
      const head = Buffer.concat([Buffer.from([0x30]), varint(total), Buffer.from([0, topic.length]), topic])
      attacker.write(head)
      const chunk = Buffer.alloc(1024 * 1024, 0x20)
      let sent = head.length
      while (!closed && sent < total) {
        if (!attacker.write(chunk)) await new Promise((r) => attacker.once('drain', r).once('close', r))
        sent += chunk.length
      }
      await waitUntil(() => closed, 'the attacker closed')
      await gw.match(/packet over maxBrokerMessageSize/)
      const grown = rss(pid) - before
      await waitUntil(() => pings >= 40, 'pings after the attack')
      running = false
      await pinger
      // Before: RSS +312 MB at 10 MB, a 3.4 s PING; 200 MB killed the process.
      expect(grown, 'RSS growth').to.be.below(32 * 1024 * 1024)
      expect(worst, 'worst PING round trip, ms').to.be.below(500)
      expect(sent, 'bytes the attacker could send').to.be.below(total)
    } finally {
      gw.kill()
      await gw.exited
    }
  })

  it('drops a message no device could be sent before parsing it (too_large, not not_json)', async () => {
    const gw = await startGateway({ maxDownlinkSize: 1024 })
    try {
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      const app = await MqttWatcher.connect(gw.mqttUrl)
      try {
        // Not JSON, and over the limit: a parse first would have counted it not_json.
        const junk = Buffer.alloc(100_000, 0x7b)
        await app.publish('hypertcp/dev-1/dn', junk)
        await app.publish('hypertcp/broadcast', junk)
        await waitUntil(() => (gw.stats().droppedBy.too_large ?? 0) >= 2, 'two drops as too_large')
        expect(gw.stats().droppedBy.not_json).to.equal(undefined)
        // A message within the limit still arrives.
        await app.publish('hypertcp/dev-1/dn', JSON.stringify({ ok: 1 }))
        const frame = await device.frames.take((f) => f.type === Cmd.JSON_MESSAGE)
        expect(JSON.parse(frame.body.toString())).to.deep.equal({ from: 'server', payload: { ok: 1 } })
      } finally {
        await app.client.endAsync()
      }
    } finally {
      await gw.close()
    }
  })
})

function varint(n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}

describe('broker security: hygiene', function () {
  this.timeout(30_000)

  it('refuses a non-string device_id (ILLEGAL_COMMAND_BODY) and ids with characters that do not show', async () => {
    const gw = await startGateway()
    try {
      for (const body of [
        { token: 'tok-2', device_id: 5 },
        { token: 'tok-2', device_id: ['dev-2b'] },
        { token: 'tok-2', device_id: 'dev-2b\u001b[2J' },
        { token: 'tok-2', device_id: 'dev\u202e-2b' },
      ]) {
        const c = await track(RawClient.connect(gw.port!))
        expect(await c.login(body), JSON.stringify(body)).to.equal(Status.ILLEGAL_COMMAND_BODY)
      }
      const c = await track(RawClient.connect(gw.port!))
      expect(await c.login({ token: 'tok-2', device_id: 'dev-2b' })).to.equal(Status.SUCCESS)
      c.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'dev-1\u200b', payload: {} })
      expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    } finally {
      await gw.close()
    }
  })

  it("takes ids beyond ASCII with idCharset unicode, never invisible ones; checks the registry's at start", async () => {
    expect(() =>
      resolveConfig([{ source: 't', values: { devices: [{ id: 'capteur-é', token: 'x' }] } }]),
    ).to.throw(/idCharset 'ascii'/)
    const gw = await startGateway({ idCharset: 'unicode', devices: [{ id: 'capteur-é', token: 'tok-é' }] })
    try {
      const c = await track(RawClient.connect(gw.port!))
      expect(await c.login('tok-é')).to.equal(Status.SUCCESS)
      c.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'x\u2066y', payload: {} })
      expect(await c.response(2)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    } finally {
      await gw.close()
    }
  })

  it('escapes control characters from outside in log lines (pretty and JSON)', async () => {
    requireBuild()
    for (const format of ['pretty', 'json']) {
      const { gw, mqttPort } = await CliProcess.standalone(['--log-format', format])
      try {
        const anonymous = await client(`mqtt://127.0.0.1:${mqttPort}`)
        // Refused (an app may not publish uplinks), and logged with its topic.
        expect(await published(anonymous, 'hypertcp/x\u001b[2J\u202e/up', '{}')).to.equal(false)
        const line = (await gw.match(/.*mqtt publish refused.*/))[0]
        expect(line, format).to.contain('\\u001b[2J\\u202e')
        expect(
          [...line].filter((ch) => ch < ' ' || ch === '\u202e'),
          format,
        ).to.deep.equal([])
      } finally {
        gw.kill()
        await gw.exited
      }
    }
  })
})

describe('broker security: fan-out with a budget', function () {
  this.timeout(30_000)

  it('takes broadcasts from MQTT at broadcastRate (10/s, burst 20), drops and counts the rest; direct downlinks pass', async () => {
    const gw = await startGateway()
    try {
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      const app = await client(gw.mqttUrl)
      const started = performance.now()
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          app.publishAsync('hypertcp/broadcast', `{"n":${i}}`, { qos: 1 }),
        ),
      )
      await app.publishAsync('hypertcp/dev-1/dn', '{"direct":true}', { qos: 1 })
      const direct = await device.frames.take((f) => f.type === Cmd.JSON_MESSAGE)
      const seconds = (performance.now() - started) / 1000
      expect(JSON.parse(direct.text).payload).to.deep.equal({ direct: true })
      await waitUntil(
        () =>
          (gw.stats().droppedBy.broadcast_rate ?? 0) +
            device.frames.history.filter((f) => f.type === Cmd.BROADCAST).length ===
          200,
        'every broadcast delivered or dropped',
      )
      const got = device.frames.history.filter((f) => f.type === Cmd.BROADCAST).length
      expect(got)
        .to.be.at.least(20)
        .and.at.most(20 + Math.ceil(seconds * 10) + 1)
    } finally {
      await gw.close()
    }
  })

  it("answers a device's broadcasts past broadcastRate with QUOTA_LIMIT, and its messages past messageRate (50/s, burst 100)", async () => {
    const gw = await startGateway()
    try {
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      /** Sends `count` frames of `type` from msg_id `first` on, and resolves to their answers, in order. */
      const burst = (type: number, targetId: string, first: number, count: number) => {
        for (let id = first; id < first + count; id++)
          device.sendFrame(type, id, { targetId, payload: { id } })
        return Promise.all(Array.from({ length: count }, (_, i) => device.response(first + i)))
      }
      const started = performance.now()
      /** At least `burst` accepted, at most what `rate` refilled since the start on top; the rest QUOTA_LIMIT. */
      const expectBudget = (answers: number[], burst: number, rate: number) => {
        const seconds = (performance.now() - started) / 1000
        const ok = answers.filter((a) => a === 0).length
        expect(ok)
          .to.be.at.least(burst)
          .and.at.most(burst + Math.ceil(seconds * rate) + 1)
        expect(answers.filter((a) => a === Status.QUOTA_LIMIT).length).to.equal(answers.length - ok)
      }
      expectBudget(await burst(Cmd.BROADCAST, 'broadcast', 2, 30), 20, 10)
      // Messages, broadcasts included: a burst of 100, then 50/s; 30 of the burst are spent above.
      expectBudget(await burst(Cmd.JSON_MESSAGE, 'server', 100, 150), 70, 50)
    } finally {
      await gw.close()
    }
  })

  it('delays the logins of a device id that logs in too often (takeover flapping), progressively', async () => {
    const gw = await startGateway({ loginFlapLimit: 3, loginFlapWindow: 60 })
    try {
      const times: number[] = []
      for (let i = 0; i < 6; i++) {
        const t = performance.now()
        const c = await track(RawClient.connect(gw.port!))
        expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
        times.push(performance.now() - t)
      }
      expect(gw.stats().loginsDelayed).to.equal(3)
      // Held 250, 500, then 1000 ms (the least they can take): each takeover waits longer.
      expect(times.slice(3).map((t, i) => t >= [250, 500, 1000][i]!)).to.deep.equal([true, true, true])
      // Another id is not held.
      const other = await track(RawClient.connect(gw.port!))
      expect(await other.login('tok-3')).to.equal(Status.SUCCESS)
      expect(gw.stats().loginsDelayed).to.equal(3)
    } finally {
      await gw.close()
    }
  })

  it("keeps half of a device's write queue from broadcasts: its direct downlinks still go when broadcasts are dropped", async () => {
    const gw = await startGateway({ maxWriteQueue: 64 * 1024, broadcastRate: 0 })
    try {
      const stuck = await track(RawClient.connect(gw.port!))
      expect(await stuck.login('tok-1')).to.equal(Status.SUCCESS)
      stuck.socket.pause() // reads nothing more: the kernel's buffers fill, then the queue
      const app = await client(gw.mqttUrl)
      const blob = JSON.stringify({ blob: 'x'.repeat(900) })
      for (let i = 0; (gw.stats().droppedBy.not_reading ?? 0) === 0; i++) {
        await app.publishAsync('hypertcp/broadcast', blob, { qos: 1 })
        expect(i, 'broadcasts before the first drop').to.be.below(10_000)
      }
      const delivered = gw.stats().delivered
      for (let i = 0; i < 20; i++) await app.publishAsync('hypertcp/dev-1/dn', blob, { qos: 1 })
      await waitUntil(() => gw.stats().delivered === delivered + 20, 'the direct downlinks queued')
    } finally {
      await gw.close()
    }
  })
})

describe('broker security: the broker port has limits too', function () {
  this.timeout(30_000)

  it('holds at most maxBrokerConnections (idle ones included); device logins are untouched', async () => {
    const gw = await startGateway({ maxBrokerConnections: 5 })
    const idle: Socket[] = []
    try {
      for (let i = 0; i < 5; i++) idle.push(await rawMqtt(gw.brokerPort!))
      // The sixth is closed on accept, before a byte is read.
      const sixth = await rawMqtt(gw.brokerPort!)
      await new Promise((resolve) => sixth.once('close', resolve))
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      // One freed: a client gets in once the broker has seen the close.
      idle.pop()!.destroy()
      let code = -1
      for (let i = 0; i < 20 && code !== 0; i++)
        code = await connackCode(gw.mqttUrl, { connectTimeout: 1000 })
      expect(code).to.equal(0)
    } finally {
      for (const s of idle) s.destroy()
      await gw.close()
    }
  })

  it("survives the issue's flood with the defaults: twice the open-files limit in idle broker connections, devices still log in", async function () {
    // The attack: idle TCP connections to the broker port (never a CONNECT) until the process has
    // no file descriptors left, so device logins are reset. Here the limit is 2,000 (prlimit) and
    // the flood 4,000 connections; the defaults (maxBrokerConnections 1000, out of the same
    // open-files budget as maxConnections) hold the broker side to its share.
    this.timeout(60_000)
    requireBuild()
    const config = join(tmpdir(), `htgw-flood-${process.pid}.json`)
    const devices = Array.from({ length: 100 }, (_, i) => ({ id: `flood-${i}`, token: `flood-tok-${i}` }))
    writeFileSync(config, JSON.stringify({ devices }))
    const { gw, port, mqttPort } = await CliProcess.standalone(['--config', config], {
      wrapper: ['prlimit', '--nofile=2000:2000'],
    })
    const held: Socket[] = []
    try {
      let refused = 0
      for (let batch = 0; batch < 8; batch++) {
        const opened = await Promise.all(
          Array.from({ length: 500 }, () => rawMqtt(mqttPort).catch(() => undefined)),
        )
        for (const s of opened) {
          if (s === undefined) refused++
          else {
            held.push(s)
            s.once('close', () => held.splice(held.indexOf(s), 1))
          }
        }
      }
      // What the broker did not take it closed at once; at most its share stays open.
      await waitUntil(() => held.length <= 1000, 'the flood past maxBrokerConnections closed')
      expect(held.length + refused, 'the flood was not refused by the OS').to.be.greaterThan(900)
      // Devices log in while the flood holds the broker's share: 100 of them, all served.
      const clients = await Promise.all(devices.map(() => track(RawClient.connect(port))))
      const statuses = await Promise.all(clients.map((c, i) => c.login(devices[i]!.token)))
      expect(new Set(statuses)).to.deep.equal(new Set([Status.SUCCESS]))
      const last = clients.at(-1)!
      last.sendFrame(Cmd.PING, 7)
      expect(await last.response(7)).to.equal(0)
    } finally {
      for (const s of held.splice(0)) s.destroy()
      gw.kill('SIGKILL')
      await gw.exited
    }
  })

  it('bans an address after repeated wrong broker passwords, as for device tokens, on both ports', async () => {
    // Loopback is exempt from bans by default; here it is not.
    const gw = await startGateway({
      brokerUsers: [{ ...APP, role: 'app' }],
      rateLimitExempt: [],
      loginFailureLimit: 3,
    })
    try {
      for (let i = 0; i < 3; i++)
        expect(await connackCode(gw.mqttUrl, { username: APP.username, password: `guess-${i}` })).to.equal(4)
      // Banned: closed on accept, before a byte is read (-1: no CONNACK), the right password too.
      expect(await connackCode(gw.mqttUrl, APP), 'the right password, once banned').to.equal(-1)
      // Devices from that address are refused too: one ban for both doors.
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.QUOTA_LIMIT)
    } finally {
      await gw.close()
    }
  })

  it('bounds retained messages (count and bytes), clearing the oldest, never presence', async () => {
    const gw = await startGateway({ maxRetainedMessages: 5, maxRetainedBytes: 8192 })
    try {
      const device = await track(RawClient.connect(gw.port!))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      const app = await client(gw.mqttUrl)
      for (let i = 1; i <= 10; i++) await app.publishAsync(`lab/${i}`, `{"i":${i}}`, { qos: 1, retain: true })
      const retainedNow = async (): Promise<string[]> => {
        const probe = await client(gw.mqttUrl)
        const got: string[] = []
        probe.on('message', (topic, _p, packet) => packet.retain && got.push(topic))
        await probe.subscribeAsync(['lab/#', 'hypertcp/+/status'], { qos: 1 })
        // Retained messages are sent with the subscription; a live marker comes after them.
        await probe.subscribeAsync('probe/done', { qos: 1 })
        const done = new Promise((resolve) => probe.on('message', (t) => t === 'probe/done' && resolve(t)))
        await app.publishAsync('probe/done', '1', { qos: 1 })
        await done
        return got.sort()
      }
      expect(await retainedNow()).to.deep.equal([
        'hypertcp/dev-1/status',
        'lab/10',
        'lab/6',
        'lab/7',
        'lab/8',
        'lab/9',
      ])
      // 3 × 3000 bytes > 8192: the oldest go first.
      for (let i = 1; i <= 3; i++)
        await app.publishAsync(`lab/big${i}`, 'x'.repeat(3000), { qos: 1, retain: true })
      expect(await retainedNow()).to.deep.equal(['hypertcp/dev-1/status', 'lab/big2', 'lab/big3'])
    } finally {
      await gw.close()
    }
  })
})
