/**
 * The firmware library (built for Linux with the host shim) against the real
 * gateway, in-process, with its embedded broker, and MQTT.js on the other
 * side: what a user of the library sees end to end.
 */
import { expect } from 'chai'
import type { Gateway, GatewayOptions } from '../../src/index.js'
import { useCleanups } from '../helpers/cleanups.js'
import { PEER_GATEWAY, startGateway as startTestGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { useFirmwareBuild } from './support/build.js'
import { type DeviceOptions, DeviceProcess } from './support/device.js'

const LOCAL = '127.0.0.1'

type Presence = { online: boolean; at: number; gateway?: string; reason?: string }

describe('firmware library vs the gateway', function () {
  this.timeout(20000)
  const firmware = useFirmwareBuild()
  // Last started, first stopped: devices and MQTT clients first, then the gateways (in reverse order of creation).
  const cleanups = useCleanups()

  async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
    const gw = await startTestGateway(options)
    cleanups.push(() => gw.close()) // idempotent: a test may have closed it
    return gw
  }

  /** Another gateway on a test gateway's embedded broker logs in as one. */
  const peerLogin = { mqttUsername: PEER_GATEWAY.username, mqttPassword: PEER_GATEWAY.password }

  async function watch(gw: Gateway, ...topics: string[]): Promise<MqttWatcher> {
    // As another gateway: its devices' envelopes keep their `from`.
    const w = await MqttWatcher.connect(gw.mqttUrl, topics, PEER_GATEWAY)
    cleanups.push(() => w.end())
    return w
  }

  function startDevice(gw: Gateway, token: string, options: Partial<DeviceOptions> = {}): DeviceProcess {
    const d = DeviceProcess.start(firmware().device, {
      connect: [`${LOCAL}:${gw.port}:${token}`],
      ...options,
    })
    cleanups.push(() => d.stop())
    return d
  }

  it('logs in, is announced online, and publishes uplinks to hypertcp/<id>/up once acked [HT-4.2, HT-4.5]', async () => {
    const gw = await startGateway()
    const w = await watch(gw, 'hypertcp/dev-1/status', 'hypertcp/dev-1/up')
    const since = Date.now()
    const dev = startDevice(gw, 'tok-1', { blocking: true })
    await dev.waitFor(/^CONNECT_RESULT i=0 ok=1$/)
    expect(await w.json<Presence>('hypertcp/dev-1/status', (p) => p.online && p.at >= since)).to.deep.include(
      {
        online: true,
        gateway: gw.config.gatewayId,
      },
    )

    await dev.command('server 0 {"temperature":25.6}', /^SENT i=0 id=1$/)
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ temperature: 25.6 })
    await dev.waitFor(/^ACK i=0 id=1 status=0$/)
  })

  it('receives downlinks from an MQTT client, as a payload or an envelope [HT-5.2]', async () => {
    const gw = await startGateway()
    const w = await watch(gw)
    const dev = startDevice(gw, 'tok-1')
    await dev.waitFor(/^LOGIN_OK i=0/)

    await w.publish('hypertcp/dev-1/dn', '{"k":1}')
    const plain = await dev.waitFor(/^MSG i=0 from=(\S+) payload=(.*)$/)
    expect(plain[1]).to.equal('server')
    expect(JSON.parse(plain[2]!)).to.deep.equal({ k: 1 })

    await w.publish('hypertcp/dev-1/dn', '{"from":"app-7","payload":{"command":"control","value":1}}')
    const env = await dev.waitFor(/^MSG i=0 from=(\S+) payload=(.*)$/)
    expect(env[1]).to.equal('app-7')
    expect(JSON.parse(env[2]!)).to.deep.equal({ command: 'control', value: 1 })
  })

  it('talks device to device, and broadcasts to the others but not back to the sender [HT-4.3, HT-4.4]', async () => {
    const gw = await startGateway()
    const w = await watch(gw)
    const one = startDevice(gw, 'tok-1')
    const two = startDevice(gw, 'tok-2')
    await Promise.all([one.waitFor(/^LOGIN_OK i=0/), two.waitFor(/^LOGIN_OK i=0/)])

    await one.command(
      'send 0 dev-2 {"command":"control","device":"relay_1","action":"toggle","value":1}',
      /^SENT/,
    )
    const d2d = await two.waitFor(/^MSG i=0 from=(\S+) payload=(.*)$/)
    expect(d2d[1]).to.equal('dev-1')
    expect(JSON.parse(d2d[2]!)).to.deep.equal({
      command: 'control',
      device: 'relay_1',
      action: 'toggle',
      value: 1,
    })
    await one.waitFor(/^ACK i=0 id=1 status=0$/)

    await two.command('send 0 dev-1 {"reply":true}', /^SENT/)
    expect(JSON.parse((await one.waitFor(/^MSG i=0 from=dev-2 payload=(.*)$/))[1]!)).to.deep.equal({
      reply: true,
    })

    await one.command('bcast 0 {"notification":"System update available"}', /^SENT/)
    const b = await two.waitFor(/^BCAST i=0 from=(\S+) payload=(.*)$/)
    expect(b[1]).to.equal('dev-1')
    expect(JSON.parse(b[2]!)).to.deep.equal({ notification: 'System update available' })
    // Broadcasts travel one topic in order: the first broadcast dev-1 gets
    // must be this later one from an MQTT client, not its own.
    await w.publish('hypertcp/broadcast', '{"from":"ops","payload":{"sentinel":1}}')
    const first = await one.waitFor(/^BCAST i=0 from=(\S+) payload=(.*)$/)
    expect(first[1]).to.equal('ops')
  })

  it('gets a pong for a JSON ping, which is not published upstream [HT-3.5]', async () => {
    const gw = await startGateway()
    const w = await watch(gw, 'hypertcp/dev-1/up')
    const dev = startDevice(gw, 'tok-1')
    await dev.waitFor(/^LOGIN_OK i=0/)
    await dev.command('server 0 {"command":"ping","timestamp":1234567890}', /^SENT i=0 id=1$/)
    const pong = await dev.waitFor(/^MSG i=0 from=server payload=(.*)$/)
    expect(JSON.parse(pong[1]!)).to.deep.equal({ command: 'pong', timestamp: 1234567890 })
    // Same connection, in order: the first thing on the up topic is the sentinel.
    await dev.command('server 0 {"sentinel":true}', /^SENT i=0 id=2$/)
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ sentinel: true })
  })

  it('stays in sync after error statuses in the length field [HT-2.7, HT-3.7, HT-4.1]', async () => {
    const gw = await startGateway()
    const w = await watch(gw)
    const dev = startDevice(gw, 'tok-1')
    await dev.waitFor(/^LOGIN_OK i=0/)
    // A JSON_MESSAGE whose body is not JSON (sent raw: the library refuses to send it as a message).
    await dev.command(`raw 0 30 ${Buffer.from('{"targetId":').toString('hex')}`, /^SENT i=0 id=1$/)
    await dev.waitFor(/^ACK i=0 id=1 status=11$/) // ILLEGAL_COMMAND_BODY
    await dev.command('raw 0 99 00', /^SENT i=0 id=2$/)
    await dev.waitFor(/^ACK i=0 id=2 status=2$/) // ILLEGAL_COMMAND
    await w.publish('hypertcp/dev-1/dn', '{"still":"in sync"}')
    expect(JSON.parse((await dev.waitFor(/^MSG i=0 from=server payload=(.*)$/))[1]!)).to.deep.equal({
      still: 'in sync',
    })
  })

  it('sends and receives frames of a custom command type mapped to raw topics [HT-5.6]', async () => {
    const gw = await startGateway({
      customCommands: [{ type: 77, up: 'hypertcp/%c/raw/77', down: 'hypertcp/%c/raw/77/dn' }],
    })
    const w = await watch(gw, 'hypertcp/dev-1/raw/77')
    const dev = startDevice(gw, 'tok-1')
    await dev.waitFor(/^LOGIN_OK i=0/)
    await dev.command('raw 0 77 00ff10', /^SENT i=0 id=1$/)
    await dev.waitFor(/^ACK i=0 id=1 status=0$/) // acknowledged once the broker had it
    expect((await w.bytes('hypertcp/dev-1/raw/77')).toString('hex')).to.equal('00ff10')
    await w.publish('hypertcp/dev-1/raw/77/dn', Buffer.from('c0ffee00', 'hex'))
    await dev.waitFor(/^FRAME i=0 type=77 id=\d+ len=4 hex=c0ffee00$/)
  })

  it('logs in with a claimed device id when the token allows it, and is refused otherwise [HT-2.2, HT-3.3]', async () => {
    const gw = await startGateway()
    const w = await watch(gw, 'hypertcp/dev-2b/up')
    const allowed = startDevice(gw, 'tok-2:dev-2b')
    await allowed.waitFor(/^LOGIN_OK i=0/)
    await allowed.command('server 0 {"as":"dev-2b"}', /^SENT/)
    expect(await w.json('hypertcp/dev-2b/up')).to.deep.equal({ as: 'dev-2b' })

    const refused = startDevice(gw, 'tok-1:dev-2b', { backoff: [20, 40] })
    await refused.waitFor(/^LOGIN_FAILED i=0 status=6$/) // NOT_ALLOWED
    await refused.waitFor(/^DISCONNECTED i=0 reason=login_refused$/)
  })

  it('stops after a wrong token instead of retrying in a loop [HT-3.2]', async () => {
    const gw = await startGateway()
    const before = gw.stats().connections
    const dev = startDevice(gw, 'wrong-token', { backoff: [20, 40] })
    await dev.waitFor(/^LOGIN_FAILED i=0 status=9$/) // INVALID_TOKEN
    await dev.waitFor(/^DISCONNECTED i=0 reason=login_refused$/)
    // The library reports no retry pending (retrying=0): no timer is armed that could reconnect.
    await dev.command('state 0', /^STATE i=0 state=refused retrying=0 attempts=1 login_status=9 /)
    expect(gw.stats().connections - before).to.equal(1)
  })

  it('moves to a second gateway instance on a redirect sent through the control topic [HT-5.5, HT-2.8]', async () => {
    const gw1 = await startGateway()
    const gw2 = await startGateway({ mqttUrl: gw1.mqttUrl, ...peerLogin })
    // Redirects go only where redirectAllow says (a reload, as SIGHUP would).
    gw1.reload({ ...gw1.config, redirectAllow: [`${LOCAL}:${gw2.port}`] })
    const w = await watch(gw1, 'hypertcp/dev-1/status', 'hypertcp/dev-1/up')
    const dev = startDevice(gw1, 'tok-1')
    await dev.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${gw1.port}$`))

    const since = Date.now()
    await w.publish(
      'hypertcp/dev-1/ctl',
      JSON.stringify({ action: 'redirect', server: LOCAL, port: gw2.port }),
    )
    await dev.waitFor(new RegExp(`^REDIRECT i=0 host=127\\.0\\.0\\.1 port=${gw2.port}$`))
    await dev.waitFor(new RegExp(`^LOGIN_OK i=0 host=127\\.0\\.0\\.1 port=${gw2.port}$`))
    expect(
      await w.json<Presence>(
        'hypertcp/dev-1/status',
        (p) => p.online && p.at >= since && p.gateway === gw2.config.gatewayId,
      ),
    ).to.deep.include({ online: true })

    await dev.command('server 0 {"via":"gw2"}', /^SENT i=0 id=1$/)
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ via: 'gw2' })
    await w.publish('hypertcp/dev-1/dn', '{"back":"through gw2"}')
    expect(JSON.parse((await dev.waitFor(/^MSG i=0 from=server payload=(.*)$/))[1]!)).to.deep.equal({
      back: 'through gw2',
    })
  })

  it('reconnects with backoff after the gateway restarts, logs in again and carries on', async () => {
    // The broker lives in a separate gateway, so it survives the restart.
    const brokerHolder = await startGateway({ devices: [] })
    const options = { mqttUrl: brokerHolder.mqttUrl, ...peerLogin }
    const gw = await startGateway(options)
    const port = gw.port
    const w = await watch(brokerHolder, 'hypertcp/dev-1/up')
    const dev = startDevice(gw, 'tok-1', { backoff: [50, 200] })
    await dev.waitFor(/^LOGIN_OK i=0/)
    await dev.command('server 0 {"boot":1}', /^SENT/)
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ boot: 1 })

    await gw.close()
    await dev.waitFor(/^DISCONNECTED i=0 reason=closed$/)
    await dev.waitFor(/^DISCONNECTED i=0 reason=connect_failed$/) // it keeps trying while the gateway is down

    const restarted = await startGateway({ ...options, port })
    expect(restarted.port).to.equal(port)
    await dev.waitFor(/^LOGIN_OK i=0/)
    await dev.command('server 0 {"boot":2}', /^SENT i=0 id=1$/)
    expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ boot: 2 })
    await w.publish('hypertcp/dev-1/dn', '{"welcome":"back"}')
    await dev.waitFor(/^MSG i=0 from=server payload=\{"welcome":"back"\}$/)
  })

  it('answers the gateway keepalive PING and stays connected; its own heartbeat never fires on a live gateway [HT-3.4]', async () => {
    const gw = await startGateway({ keepalive: 0.5 })
    const w = await watch(gw)
    // The gateway pings after 0.5 s of silence and closes if no answer comes
    // within 0.25 s. The device pings only after 1 s without sending, and its
    // answers to those PINGs count as sending, so the gateway's PINGs are the
    // only traffic: the device must answer them, and must count them as
    // signs of life (its heartbeat would drop a server silent for 1 + 1.5 s).
    const dev = startDevice(gw, 'tok-1', { keepalive: 1000, heartbeatTimeout: 1500 })
    await dev.waitFor(/^LOGIN_OK i=0/)
    const start = gw.stats().framesOut
    // The gateway's counter: six PINGs sent (about 3 s).
    await waitUntil(() => gw.stats().framesOut - start >= 6, 'the gateway has sent six PINGs', 10_000)
    await w.publish('hypertcp/dev-1/dn', '{"alive":true}')
    await dev.waitFor(/^MSG i=0 from=server payload=\{"alive":true\}$/)
    expect(dev.all(/^DISCONNECTED/)).to.deep.equal([])
    expect(gw.stats().closes).to.deep.equal({})
  })
})
