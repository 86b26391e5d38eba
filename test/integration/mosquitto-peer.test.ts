import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import mqtt, { type MqttClient } from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { root } from '../helpers/cli.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { expectPeerTakeover, expectPeerTraffic, nextMessage, PEER_TOPICS } from '../helpers/peer-topics.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

// The README's Mosquitto set-up with peer topics (topics.peer, topics.peerBroadcast): what only
// gateways may say — a device's `from`, a takeover — travels where the shipped acl_file lets only
// the gateway user write, so an app or an admin cannot say it on Mosquitto either.

const USERS = { gateway: 'gw-pw', app: 'app-pw', admin: 'admin-pw' } as const
type User = keyof typeof USERS

describe('security with Mosquitto: peer topics (the shipped acl_file)', function () {
  this.timeout(30_000)
  const { track } = trackRawClients()
  let mosquitto: Mosquitto
  let a: Gateway
  let b: Gateway
  const clients: MqttClient[] = []

  before(async function () {
    requireMosquitto(this)
    const dir = mkdtempSync(join(tmpdir(), 'htgw-peer-'))
    chmodSync(dir, 0o755)
    const passwd = join(dir, 'passwd')
    for (const [i, [user, pw]] of Object.entries(USERS).entries())
      execFileSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', passwd, user, pw])
    chmodSync(passwd, 0o644) // mosquitto reads it as its own user
    const acl = readFileSync(join(root, 'deploy/mosquitto/acl'), 'utf8').split('\n')
    mosquitto = await Mosquitto.start({ settings: { allow_anonymous: false, password_file: passwd }, acl })
    const options = {
      mqttUrl: mosquitto.url,
      mqttUsername: 'gateway',
      mqttPassword: USERS.gateway,
      topics: PEER_TOPICS,
    }
    a = await startGateway(options)
    b = await startGateway(options)
  })
  after(async () => {
    await a?.close()
    await b?.close()
    await mosquitto?.dispose()
  })
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true)
  })

  async function login(user: User): Promise<MqttClient> {
    const c = await mqtt.connectAsync(mosquitto.url, {
      reconnectPeriod: 0,
      protocolVersion: 5,
      username: user,
      password: USERS[user],
    })
    clients.push(c)
    return c
  }

  async function device(gw: Gateway, token: string): Promise<RawClient> {
    const d = await track(RawClient.connect(gw.port!))
    expect(await d.login(token)).to.equal(Status.SUCCESS)
    return d
  }

  it('carries device-to-device messages and broadcasts between gateways, with their sender', async () => {
    await expectPeerTraffic(await device(a, 'tok-1'), await device(b, 'tok-3'), await login('app'))
  })

  it("believes no other client's from, peer message or takeover notice", async () => {
    const dev1 = await device(a, 'tok-1')
    const dev3 = await device(b, 'tok-3')
    const app = await login('app')
    const admin = await login('admin')
    // The attack of the issue: "from sensor-1: unlock", on the down topic anyone may write.
    const replaced = b.stats().controlRefused.from_not_believed ?? 0
    await app.publishAsync('hypertcp/dev-3/dn', '{"from":"dev-1","payload":{"command":"unlock"}}', { qos: 1 })
    expect(await nextMessage(dev3)).to.deep.equal({ from: 'server', payload: { command: 'unlock' } })
    expect(b.stats().controlRefused.from_not_believed).to.equal(replaced + 1)
    // The peer topic itself is the gateways': Mosquitto refuses the app and the admin (MQTT 5: 0x87).
    for (const client of [app, admin]) {
      const refused = await client
        .publishAsync('hypertcp/dev-3/peer', '{"from":"dev-1","payload":{"x":1}}', { qos: 1 })
        .then(
          () => undefined,
          (err: { code?: number }) => err.code,
        )
      expect(refused, 'PUBACK reason').to.equal(0x87)
    }
    // A broadcast named after a device comes from server, and reaches that device too.
    await app.publishAsync('hypertcp/broadcast', '{"from":"dev-1","payload":{"fake":1}}', { qos: 1 })
    expect(await nextMessage(dev1, Cmd.BROADCAST)).to.deep.equal({ from: 'server', payload: { fake: 1 } })
    expect(await nextMessage(dev3, Cmd.BROADCAST)).to.deep.equal({ from: 'server', payload: { fake: 1 } })
    // An admin's takeover notice on the control topic closes nothing.
    const notBelieved = b.stats().controlRefused.takeover_not_believed ?? 0
    const forged = { action: 'takeover', gateway: 'elsewhere', session: 'x', at: Date.now() + 60_000 }
    await admin.publishAsync('hypertcp/dev-3/ctl', JSON.stringify(forged), { qos: 1 })
    await waitUntil(
      () => b.stats().controlRefused.takeover_not_believed === notBelieved + 1,
      'the takeover notice ignored',
    )
    dev3.sendFrame(Cmd.PING, 9)
    expect(await dev3.response(9), 'still served').to.equal(0)
    // Nothing the peer topic refused reached the device: the next message is the app's downlink.
    await app.publishAsync('hypertcp/dev-3/dn', '{"n":2}', { qos: 1 })
    expect(await nextMessage(dev3)).to.deep.equal({ from: 'server', payload: { n: 2 } })
  })

  it('takes a device over from one gateway to the other, the notice on the peer topic', async () => {
    await expectPeerTakeover(
      await login('admin'),
      () => device(a, 'tok-2'),
      () => device(b, 'tok-2'),
    )
  })
})
