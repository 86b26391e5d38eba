import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { root } from '../helpers/cli.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { Mosquitto, mosquittoBin, requireMosquitto } from '../helpers/mosquitto.js'
import { freePort, waitListening } from '../helpers/net.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

// The README's Mosquitto set-up (deploy/mosquitto/acl): the roles of the embedded broker, on Mosquitto.

const USERS = { gateway: 'gw-pw', app: 'app-pw', monitor: 'monitor-pw', admin: 'admin-pw' } as const
type User = keyof typeof USERS

describe('security with Mosquitto: the shipped acl_file', function () {
  this.timeout(30_000)
  const { track } = trackRawClients()
  let mosquitto: Mosquitto
  let gw: Gateway
  const clients: MqttClient[] = []
  let passwdFile = ''

  before(async function () {
    requireMosquitto(this)
    const dir = mkdtempSync(join(tmpdir(), 'htgw-acl-'))
    chmodSync(dir, 0o755)
    const passwd = join(dir, 'passwd')
    for (const [i, [user, pw]] of Object.entries(USERS).entries())
      execFileSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', passwd, user, pw])
    chmodSync(passwd, 0o644) // mosquitto reads it as its own user
    passwdFile = passwd
    const acl = readFileSync(join(root, 'deploy/mosquitto/acl'), 'utf8').split('\n')
    mosquitto = await Mosquitto.start({ settings: { allow_anonymous: false, password_file: passwd }, acl })
    gw = await startGateway({
      mqttUrl: mosquitto.url,
      mqttUsername: 'gateway',
      mqttPassword: USERS.gateway,
      mqttProtocolVersion: '3.1.1',
      redirectAllow: ['gw2.example:8080'],
    })
  })
  after(async () => {
    await gw?.close()
    await mosquitto?.dispose()
  })
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true)
  })

  async function login(user: User | null, options: IClientOptions = {}): Promise<MqttClient> {
    const c = await mqtt.connectAsync(mosquitto.url, {
      reconnectPeriod: 0,
      ...(user === null ? {} : { username: user, password: USERS[user] }),
      ...options,
    })
    clients.push(c)
    return c
  }

  it('refuses anonymous clients', async () => {
    const err = await login(null).then(
      () => undefined,
      (e: { code?: number }) => e,
    )
    expect(err?.code).to.equal(5)
  })

  it('lets the gateway work, and an app read uplinks and presence but not dn or ctl, nor forge uplinks', async () => {
    const app = await login('app')
    const monitor = await login('monitor')
    const appSeen: string[] = []
    const monitorSeen: string[] = []
    app.on('message', (t, p) => appSeen.push(`${t} ${p}`))
    monitor.on('message', (t, p) => monitorSeen.push(`${t} ${p}`))
    await app.subscribeAsync('hypertcp/#', { qos: 1 })
    await monitor.subscribeAsync('hypertcp/+/up', { qos: 1 })
    // Forged by the app: Mosquitto acknowledges (MQTT 3.1.1 cannot refuse) and drops them.
    await app.publishAsync('hypertcp/dev-1/up', '{"forged":true}', { qos: 1 })
    await app.publishAsync('hypertcp/dev-1/status', '{"online":false}', { qos: 1, retain: true })
    await (await login('admin')).publishAsync('hypertcp/nobody/dn', '{"secret":1}', { qos: 1 })
    const device = await track(RawClient.connect(gw.port!))
    expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
    device.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { real: 1 } })
    expect(await device.response(2)).to.equal(0)
    await waitUntil(() => monitorSeen.length > 0 && appSeen.some((l) => l.includes('/up ')), 'the uplink')
    expect(monitorSeen).to.deep.equal(['hypertcp/dev-1/up {"real":1}'])
    expect(appSeen.filter((l) => l.includes('forged') || l.includes('secret'))).to.deep.equal([])
    expect(appSeen.some((l) => l.startsWith('hypertcp/dev-1/status {"online":true'))).to.equal(true)
    // A downlink from the app reaches the device.
    await app.publishAsync('hypertcp/dev-1/dn', '{"cmd":"on"}', { qos: 1 })
    const f = await device.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
    expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { cmd: 'on' } })
  })

  it('obeys control commands only from admins (and redirects only to redirectAllow)', async () => {
    const device = await track(RawClient.connect(gw.port!))
    expect(await device.login('tok-3')).to.equal(Status.SUCCESS)
    await (await login('app')).publishAsync('hypertcp/dev-3/ctl', '{"action":"kick"}', { qos: 1 })
    await (await login('monitor')).publishAsync('hypertcp/dev-3/ctl', '{"action":"kick"}', { qos: 1 })
    // The admin's refused redirect arrives after the two kicks would have: they were dropped.
    const admin = await login('admin')
    const refused = gw.stats().controlRefused.redirect_not_allowed ?? 0
    await admin.publishAsync('hypertcp/dev-3/ctl', '{"action":"redirect","server":"evil.example","port":1}', {
      qos: 1,
    })
    await waitUntil(
      () => gw.stats().controlRefused.redirect_not_allowed === refused + 1,
      'the refused redirect',
    )
    device.sendFrame(Cmd.PING, 5)
    expect(await device.response(5), 'still served').to.equal(0)
    await admin.publishAsync('hypertcp/dev-3/ctl', '{"action":"kick"}', { qos: 1 })
    await device.waitClosed()
  })

  it('starts from the shipped listener snippet (deploy/mosquitto/hypertcp.conf), its paths and port replaced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'htgw-conf-'))
    chmodSync(dir, 0o755)
    const port = await freePort()
    const acl = join(dir, 'acl')
    writeFileSync(acl, readFileSync(join(root, 'deploy/mosquitto/acl')), { mode: 0o644 })
    const conf = join(dir, 'mosquitto.conf')
    const shipped = readFileSync(join(root, 'deploy/mosquitto/hypertcp.conf'), 'utf8')
    const text = shipped
      .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
      .replaceAll('/etc/mosquitto/hypertcp.passwd', passwdFile)
      .replaceAll('/etc/mosquitto/hypertcp.acl', acl)
    expect(text, 'the snippet has the lines replaced here').to.not.equal(shipped)
    writeFileSync(conf, text, { mode: 0o644 })
    const child = spawn(mosquittoBin!, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    try {
      await waitListening(port, 10_000, () =>
        child.exitCode !== null ? `mosquitto exited (${child.exitCode}): ${output}` : undefined,
      )
      const url = `mqtt://127.0.0.1:${port}`
      const c = await mqtt.connectAsync(url, { username: 'app', password: USERS.app, reconnectPeriod: 0 })
      await c.endAsync()
      const refused = await mqtt.connectAsync(url, { reconnectPeriod: 0 }).then(
        async (x) => {
          await x.endAsync()
          return 0
        },
        (e: { code?: number }) => e.code,
      )
      expect(refused, 'anonymous').to.equal(5)
    } finally {
      child.kill()
    }
  })
})
