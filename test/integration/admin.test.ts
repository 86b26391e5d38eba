import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import mqtt from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { CliProcess, requireBuild, runCli } from '../helpers/cli.js'
import { FakeBroker } from '../helpers/fake-broker.js'
import { DEVICES, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

/** A request to the admin listener; resolves to its status and its body (JSON when it is JSON). */
async function call(
  port: number,
  path: string,
  init: { method?: string; token?: string; body?: string } = {},
): Promise<{ status: number; body: unknown; text: string; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
  })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    /* not JSON: the metrics, the page */
  }
  return { status: res.status, body, text, headers: res.headers }
}

/** The value of one sample of the Prometheus text (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const MANY = [
  ...DEVICES,
  ...Array.from({ length: 5 }, (_, i) => ({ id: `page-${i}`, token: `page-tok-${i}` })),
]

describe('admin listener: health, metrics, devices API (embedded broker)', function () {
  this.timeout(20_000)
  let gw: Gateway
  let admin: number
  const clients = trackRawClients()

  before(async () => {
    gw = await startGateway({ adminPort: 0, devices: MANY })
    admin = gw.adminPort!
  })
  after(async () => gw?.close())

  async function login(token: string): Promise<RawClient> {
    const c = await clients.track(RawClient.connect(gw.port))
    expect(await c.login(token)).to.equal(Status.SUCCESS)
    return c
  }

  it('answers /healthz and /readyz without a token', async () => {
    expect(await call(admin, '/healthz')).to.deep.include({ status: 200, body: { status: 'ok' } })
    expect(await call(admin, '/readyz')).to.deep.include({ status: 200, body: { status: 'ready' } })
  })

  it("exposes Prometheus metrics: the process's and the gateway's, counted as devices log in and send", async () => {
    const c = await login('tok-1')
    c.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { t: 1 } })
    expect(await c.response(2)).to.equal(0)
    c.sendFrame(Cmd.JSON_MESSAGE, 3, 'not json')
    expect(await c.response(3)).to.equal(Status.ILLEGAL_COMMAND_BODY)
    const bad = await RawClient.connect(gw.port)
    expect(await bad.login('wrong')).to.equal(Status.INVALID_TOKEN)
    const { status, text, headers } = await call(admin, '/metrics')
    expect(status).to.equal(200)
    expect(headers.get('content-type')).to.match(/^text\/plain/)
    expect(sample(text, 'process_resident_memory_bytes')).to.be.above(0)
    expect(text).to.contain('nodejs_eventloop_lag_seconds')
    expect(sample(text, 'hypertcp_devices_connected')).to.equal(1)
    expect(sample(text, 'hypertcp_logins_total{result="ok"}')).to.equal(1)
    expect(sample(text, 'hypertcp_logins_total{result="invalid_token"}')).to.equal(1)
    expect(sample(text, 'hypertcp_messages_up_total{result="acked"}')).to.equal(1)
    expect(sample(text, 'hypertcp_messages_up_total{result="error"}')).to.equal(1)
    expect(sample(text, 'hypertcp_frames_in_total{type="json_message"}')).to.equal(2)
    expect(sample(text, 'hypertcp_frames_in_total{type="login"}')).to.equal(2)
    expect(sample(text, 'hypertcp_closes_total{reason="invalid_token"}')).to.equal(1)
    expect(sample(text, 'hypertcp_broker_connected{connection="0"}')).to.equal(1)
    expect(sample(text, 'hypertcp_publish_ack_seconds_count')).to.equal(1)
    expect(sample(text, 'hypertcp_publish_ack_seconds_bucket{le="+Inf"}')).to.equal(1)
    expect(sample(text, 'hypertcp_publish_ack_seconds_bucket{le="10"}')).to.equal(1)
  })

  it('lists the devices connected here in id order, page by page, and by prefix', async () => {
    for (let i = 4; i >= 0; i--) await login(`page-tok-${i}`)
    await login('tok-2')
    const first = await call(admin, '/api/v1/devices?limit=2&prefix=page-')
    const body = first.body as { devices: { id: string }[]; next: string | null }
    expect(body.devices.map((d) => d.id)).to.deep.equal(['page-0', 'page-1'])
    const rest = (await call(admin, `/api/v1/devices?prefix=page-&limit=10&cursor=${body.next}`)).body as {
      devices: { id: string }[]
      next: string | null
    }
    expect(rest.devices.map((d) => d.id)).to.deep.equal(['page-2', 'page-3', 'page-4'])
    expect(rest.next).to.equal(null)
    const one = (await call(admin, '/api/v1/devices/dev-2')).body as Record<string, unknown>
    expect(one).to.include({ id: 'dev-2', ip: '127.0.0.1', username: 'dev-2', tls: false, up: 0, down: 0 })
    expect(Date.parse(one.connectedAt as string)).to.be.closeTo(Date.now(), 60_000)
    expect((await call(admin, '/api/v1/devices/nobody')).status).to.equal(404)
    expect((await call(admin, '/api/v1/devices?limit=0')).status).to.equal(400)
  })

  it('sends a message to a device through its down topic, and refuses bodies that are not one', async () => {
    const c = await login('tok-3')
    const sent = await call(admin, '/api/v1/devices/dev-3/messages', {
      method: 'POST',
      body: JSON.stringify({ payload: { command: 'toggle' } }),
    })
    expect(sent.status).to.equal(202)
    const f = await c.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
    expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { command: 'toggle' } })
    const post = (body: string) => call(admin, '/api/v1/devices/dev-3/messages', { method: 'POST', body })
    expect((await post('{not json')).status).to.equal(400)
    expect((await post('{"pay":1}')).status).to.equal(400)
    expect((await post(JSON.stringify({ payload: 'x'.repeat(1100) }))).status).to.equal(413)
    expect(
      (await post(JSON.stringify({ payload: 'x'.repeat(1010) }))).status,
      'over once enveloped',
    ).to.equal(413)
    expect(((await call(admin, '/api/v1/devices/dev-3')).body as { down: number }).down).to.equal(1)
  })

  it('kicks a device: 204, its connection closed with reason kicked; 404 for one not here', async () => {
    const c = await login('tok-4')
    const kicks = gw.stats().closes.kicked ?? 0
    expect((await call(admin, '/api/v1/devices/dev-4', { method: 'DELETE' })).status).to.equal(204)
    await c.waitClosed()
    expect(gw.stats().closes.kicked).to.equal(kicks + 1)
    expect((await call(admin, '/api/v1/devices/dev-4', { method: 'DELETE' })).status).to.equal(404)
  })

  it('answers the counters as JSON, with the gateway id, version and uptime; errors as JSON', async () => {
    const stats = (await call(admin, '/api/v1/stats')).body as Record<string, unknown>
    expect(stats).to.include({ gatewayId: gw.config.gatewayId })
    expect(stats.version).to.match(/^\d+\.\d+\.\d+/)
    expect(stats.uptimeSeconds).to.be.a('number')
    expect(stats.logins).to.be.above(0)
    const missing = await call(admin, '/api/v1/nothing')
    expect(missing.status).to.equal(404)
    expect(missing.body).to.have.property('error').that.is.a('string')
    expect((await call(admin, '/api/v1/stats', { method: 'POST', body: '{}' })).status).to.equal(405)
  })
})

describe('admin listener: the bearer token, readiness, refusing to start unguarded', function () {
  this.timeout(20_000)

  it('with adminToken, /metrics and /api need it (401 otherwise); health checks never do', async () => {
    const gw = await startGateway({ adminPort: 0, adminToken: 's3cret-admin' })
    try {
      const port = gw.adminPort!
      for (const path of ['/metrics', '/api/v1/stats', '/api/v1/devices']) {
        const none = await call(port, path)
        expect(none.status, path).to.equal(401)
        expect(none.headers.get('www-authenticate')).to.equal('Bearer')
        expect((await call(port, path, { token: 'wrong' })).status, path).to.equal(401)
        expect((await call(port, path, { token: 's3cret-admin' })).status, path).to.equal(200)
      }
      expect((await call(port, '/healthz')).status).to.equal(200)
      expect((await call(port, '/readyz')).status).to.equal(200)
      expect((await call(port, '/')).text).to.contain('<title>hypertcp-gateway</title>')
    } finally {
      await gw.close()
    }
  })

  it('is not ready (503, saying what is missing) while the broker connection is down', async () => {
    const fake = await FakeBroker.start() // accepts TCP, never answers CONNECT
    const gw = await startGateway({
      adminPort: 0,
      mqttUrl: fake.url,
      mqttConnections: 2,
      mqttConnectTimeout: 0.2,
    })
    try {
      const r = await call(gw.adminPort!, '/readyz')
      expect(r.status).to.equal(503)
      expect((r.body as { missing: string[] }).missing).to.deep.equal(['broker connection 0, 1 down'])
      expect((await call(gw.adminPort!, '/healthz')).status).to.equal(200)
    } finally {
      await gw.close()
      await fake.close()
    }
  })

  it('refuses to start with the admin listener beyond loopback and no token (exit 2)', () => {
    requireBuild()
    const r = runCli(['--admin-host', '0.0.0.0', '--admin-port', '0', '--port', '0', '--broker-port', '0'])
    expect(r.status).to.equal(2)
    expect(r.stderr).to.contain('adminToken').and.contain('adminHost 0.0.0.0 is not a loopback address')
  })
})

describe('admin listener: no secret is ever printed', function () {
  this.timeout(30_000)
  const clients = trackRawClients()

  it('keeps a marker given to every secret out of the logs (debug), --print-config and /api/v1/stats', async () => {
    requireBuild()
    const marker = 'MaRkEr-7c1e'
    const config = join(tmpdir(), `htgw-secrets-${process.pid}.json`)
    writeFileSync(
      config,
      JSON.stringify({
        devices: [{ id: 'dev-1', token: `${marker}-device` }],
        brokerUsername: 'u',
        brokerUsers: [{ username: 'bu', password: `${marker}-bu`, role: 'app' }],
      }),
    )
    const env = {
      HYPERTCP_BROKER_PASSWORD: `${marker}-broker`,
      HYPERTCP_ADMIN_TOKEN: `${marker}-admin`,
      HYPERTCP_MQTT_PASSWORD: `${marker}-mqtt`,
    }
    const printed = runCli(
      [
        ...['--config', config, '--print-config', '--mqtt-url', `mqtt://bob:${marker}-url@127.0.0.1:1`],
        ...['--auth-url', `https://svc:${marker}-hook@auth.example/check`],
      ],
      env,
    )
    expect(printed.status).to.equal(0)
    expect(printed.stdout + printed.stderr).to.not.contain(marker)
    const gw = CliProcess.start(
      [
        '--config',
        config,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--broker-host',
        '127.0.0.1',
        '--broker-port',
        '0',
      ],
      { ...env, HYPERTCP_LOG_LEVEL: 'debug', HYPERTCP_BROKER_WS_PORT: 'off' },
    )
    try {
      const mqttPort = Number((await gw.match(/embedded MQTT broker listening on 127\.0\.0\.1:(\d+)/))[1])
      const port = Number((await gw.match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/))[1])
      const adminPort = Number((await gw.match(/admin listener .* on http:\/\/127\.0\.0\.1:(\d+)/))[1])
      const dev = await clients.track(RawClient.connect(port))
      expect(await dev.login(`${marker}-device`)).to.equal(Status.SUCCESS)
      const wrong = await RawClient.connect(port)
      expect(await wrong.login(`${marker}-wrong`)).to.equal(Status.INVALID_TOKEN)
      const stats = await call(adminPort, '/api/v1/stats', { token: `${marker}-admin` })
      expect(stats.status).to.equal(200)
      expect(stats.text).to.not.contain(marker)
      await call(adminPort, '/api/v1/stats', { token: `${marker}-wrong-admin` })
      await mqtt
        .connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
          username: 'bu',
          password: `${marker}-wrong-bu`,
          reconnectPeriod: 0,
        })
        .then(
          (c) => c.endAsync(),
          () => {},
        )
      await waitUntil(
        () => gw.lines.history.some((l) => l.includes('login refused')),
        'the refused login is logged',
      )
      await waitUntil(
        () => gw.lines.history.some((l) => l.includes('mqtt login refused')),
        'the refused broker login is logged',
      )
    } finally {
      gw.kill('SIGTERM')
      await gw.exited
    }
    expect(gw.lines.history.join('\n')).to.not.contain(marker)
  })
})
