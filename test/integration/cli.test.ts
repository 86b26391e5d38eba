import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { expect } from 'chai'
import mqtt from 'mqtt'
import { makePki } from '../helpers/certs.js'
import { CliProcess, requireBuild, runCli } from '../helpers/cli.js'
import { Inbox } from '../helpers/inbox.js'
import { mosquittoPublish, mosquittoSub, requireMosquitto } from '../helpers/mosquitto.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { RawClient } from '../helpers/raw-client.js'

const dir = mkdtempSync(join(tmpdir(), 'htgw-cli-'))
function configFile(name: string, content: unknown): string {
  const path = join(dir, name)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

describe('command line', () => {
  before(requireBuild)

  it('documents every flag in --help', () => {
    const r = runCli(['--help'])
    expect(r.status).to.equal(0)
    for (const flag of [
      '--config',
      '--host',
      '--port',
      '--mqtt-url',
      '--mqtt-username',
      '--mqtt-password',
      '--broker-port',
      '--broker-ws-port',
      '--log-level',
      '--log-format',
      '--gateway-id',
      '--keepalive',
      '--login-timeout',
      '--max-frame-size',
    ]) {
      expect(r.stdout, flag).to.contain(flag)
    }
  })

  it('stops with exit code 2 and names the key for an invalid config file', () => {
    const r = runCli(['--config', configFile('bad.json', { port: 'eighty', devices: [] })])
    expect(r.status).to.equal(2)
    expect(r.stderr)
      .to.contain('invalid configuration')
      .and.contain('port')
      .and.contain('expected a port number')
  })

  it('names an unknown key in the file, with a suggestion', () => {
    const r = runCli(['--config', configFile('typo.json', { keepAlive: 30 })])
    expect(r.status).to.equal(2)
    expect(r.stderr).to.contain('keepAlive').and.contain('did you mean "keepalive"')
  })

  it('reports a config file that is missing or not JSON', () => {
    expect(runCli(['--config', join(dir, 'missing.json')]).stderr).to.contain('cannot be read (ENOENT)')
    const r = runCli(['--config', configFile('broken.json', '{"port": 80,')])
    expect(r.status).to.equal(2)
    expect(r.stderr).to.contain('is not valid JSON')
  })

  it('refuses an unknown flag and a bad flag value', () => {
    const unknown = runCli(['--prot', '80'])
    expect(unknown.status).to.not.equal(0)
    expect(unknown.stderr).to.match(/Unknown argument/i)
    const bad = runCli(['--keepalive', 'soon'])
    expect(bad.status).to.equal(2)
    expect(bad.stderr).to.contain('--keepalive')
  })

  it('layers file < environment < flags, and hides secrets in --print-config', () => {
    const file = configFile('layers.json', {
      port: 1000,
      host: '127.0.0.1',
      devices: [{ id: 'd', token: 'secret-token' }],
    })
    const r = runCli(['--config', file, '--print-config', '--log-level', 'warn'], {
      HYPERTCP_PORT: '2000',
      HYPERTCP_MQTT_PASSWORD: 'hunter2',
      HYPERTCP_LOG_LEVEL: 'debug',
    })
    expect(r.status).to.equal(0)
    const c = JSON.parse(r.stdout) as Record<string, unknown>
    expect(c).to.include({ port: 2000, host: '127.0.0.1', logLevel: 'warn', mqttPassword: '***' })
    expect(r.stdout).to.not.contain('secret-token').and.not.contain('hunter2')
  })

  it('hides a marker given to every secret, and the credentials of every broker URL, in --print-config', () => {
    const marker = 'M4RK3R-s3cr3t'
    const file = configFile('secrets.json', { devices: [{ id: 'd', token: marker }], brokerUsername: 'u' })
    const r = runCli(['--config', file, '--print-config'], {
      HYPERTCP_MQTT_PASSWORD: marker,
      HYPERTCP_BROKER_PASSWORD: marker,
      HYPERTCP_MQTT_URL: `mqtt://bob:${marker}@10.0.0.1:1883,mqtts://${marker}@10.0.0.2:8883`,
    })
    expect(r.status).to.equal(0)
    expect(r.stdout).to.not.contain(marker)
    expect((JSON.parse(r.stdout) as { mqttUrl: string[] }).mqttUrl).to.deep.equal([
      'mqtt://***:***@10.0.0.1:1883',
      'mqtts://***@10.0.0.2:8883',
    ])
  })

  describe('with ports in use', () => {
    let blocker: Server
    let port: number
    before(async () => {
      blocker = createServer()
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
      port = (blocker.address() as { port: number }).port
    })
    after(() => new Promise<void>((resolve) => blocker.close(() => resolve())))

    it('exits 1 with a clear message when the HyperTCP port is taken', () => {
      const r = runCli([
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--broker-port',
        '0',
        '--broker-ws-port',
        'off',
        '--log-level',
        'error',
      ])
      expect(r.status).to.equal(1)
      expect(r.stderr)
        .to.contain(`HyperTCP listener cannot listen on 127.0.0.1:${port}`)
        .and.contain('already in use')
    })

    it('exits 1 with a clear message when the embedded broker port is taken', () => {
      const r = runCli([
        '--broker-host',
        '127.0.0.1',
        '--broker-port',
        String(port),
        '--port',
        '0',
        '--log-level',
        'error',
      ])
      expect(r.status).to.equal(1)
      expect(r.stderr).to.contain('embedded MQTT broker cannot listen').and.contain('already in use')
    })
  })

  it('on SIGHUP, reloads the registry (a revoked device is kicked) and the certificates, dropping no one else', async function () {
    this.timeout(30_000)
    const pki = makePki()
    const cert = join(dir, 'live-cert.pem')
    const key = join(dir, 'live-key.pem')
    copyFileSync(pki.server.cert, cert)
    copyFileSync(pki.server.key, key)
    const devices = [
      { id: 'dev-a', token: 'tok-a' },
      { id: 'dev-b', token: 'tok-b' },
    ]
    const file = configFile('hup.json', { devices, tlsCert: cert, tlsKey: key })
    const { gw, port } = await CliProcess.standalone(['--config', file, '--tls-port', '0'])
    try {
      const tlsPort = Number((await gw.match(/over TLS listening on 127\.0\.0\.1:(\d+)/))[1])
      const revoked = await RawClient.connect(port)
      expect(await revoked.login('tok-a')).to.equal(200)
      const kept = await RawClient.connectTls(tlsPort, { ca: pki.caPem })
      expect(await kept.login('tok-b')).to.equal(200)
      const before = (kept.socket as TLSSocket).getPeerCertificate().fingerprint256
      // The operator revokes dev-a and rotates the certificate in place, then signals.
      writeFileSync(file, JSON.stringify({ devices: devices.slice(1), tlsCert: cert, tlsKey: key }))
      copyFileSync(pki.server2.cert, cert)
      copyFileSync(pki.server2.key, key)
      gw.kill('SIGHUP')
      await gw.match(/reloaded.*kicked=1/)
      await revoked.waitClosed()
      const fresh = await RawClient.connectTls(tlsPort, { ca: pki.caPem })
      expect((fresh.socket as TLSSocket).getPeerCertificate().fingerprint256).to.not.equal(before)
      expect(await fresh.login('tok-a')).to.equal(9) // INVALID_TOKEN now
      kept.sendFrame(0x06, 7) // PING
      expect(await kept.response(7)).to.equal(0)
      for (const c of [revoked, kept, fresh]) c.destroy()
    } finally {
      gw.kill('SIGKILL')
      await gw.exited
    }
  })

  describe('the README tour, with the example config', () => {
    let gw: CliProcess
    let sub: ChildProcess | undefined
    let ports: { hypertcp: number; mqtt: number; ws: number }

    before(async function () {
      requireMosquitto(this, true)
      // One line per listener, with the real (OS-chosen) ports.
      const started = await CliProcess.standalone(['--config', 'config/gateway.example.json'], { ws: true })
      gw = started.gw
      ports = { mqtt: started.mqttPort, ws: started.wsPort!, hypertcp: started.port }
    })
    after(async () => {
      sub?.kill()
      if (gw && gw.child.exitCode === null) {
        gw.kill('SIGKILL')
        await gw.exited
      }
    })

    it('carries up, down, presence over mosquitto_sub/mosquitto_pub, MQTT over WebSocket, and shuts down on SIGTERM', async () => {
      const seen = new Inbox<string>('mosquitto_sub')
      sub = spawn(mosquittoSub!, [
        '-h',
        '127.0.0.1',
        '-p',
        String(ports.mqtt),
        '-t',
        'hypertcp/#',
        '-v',
        '-q',
        '1',
      ])
      let buf = ''
      sub.stdout?.on('data', (d: Buffer) => {
        buf += d.toString()
        const lines = buf.split('\n')
        buf = lines.pop()!
        for (const l of lines) seen.push(l)
      })
      // mosquitto_sub is subscribed once it gets the gateway's retained status.
      await seen.take((l) => l.startsWith('hypertcp/$gateway/gw-local/status {"online":true'), 10_000)

      const ws = await mqtt.connectAsync(`ws://127.0.0.1:${ports.ws}`)
      const wsInbox = new Inbox<string>('websocket client')
      ws.on('message', (topic, payload) => wsInbox.push(`${topic} ${payload}`))
      await ws.subscribeAsync('hypertcp/+/up', { qos: 1 })

      const device = await OriginalDevice.connect(ports.hypertcp, 'demo-token-sensor-1', {
        pingIntervalMs: 0,
      })
      expect(device.loginStatus).to.equal(200)
      await seen.take((l) => l.startsWith('hypertcp/sensor-1/status {"online":true'))
      device.sendToServer({ temperature: 25.6, humidity: 65.3 })
      await seen.take((l) => l === 'hypertcp/sensor-1/up {"temperature":25.6,"humidity":65.3}')
      await wsInbox.take((l) => l === 'hypertcp/sensor-1/up {"temperature":25.6,"humidity":65.3}')

      mosquittoPublish(ports.mqtt, 'hypertcp/sensor-1/dn', '{"command":"toggle","device":"relay_1"}')
      expect(await device.events.take((e) => e.kind === 'message')).to.deep.include({
        from: 'server',
        payload: { command: 'toggle', device: 'relay_1' },
      })
      await ws.endAsync()

      gw.kill('SIGTERM')
      await device.closed
      await seen.take((l) => /^hypertcp\/sensor-1\/status \{"online":false,.*"reason":"shutdown"/.test(l))
      await seen.take((l) =>
        /^hypertcp\/\$gateway\/gw-local\/status \{"online":false,.*"reason":"shutdown"/.test(l),
      )
      expect(await gw.exited).to.equal(0)
    })
  })
})
