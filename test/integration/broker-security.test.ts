import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { expect } from 'chai'
import mqttPacket from 'mqtt-packet'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { CliProcess, requireBuild, runCli } from '../helpers/cli.js'
import { startGateway } from '../helpers/gateway.js'
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
