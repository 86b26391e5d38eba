import { readFileSync } from 'node:fs'
import type { TLSSocket } from 'node:tls'
import { expect } from 'chai'
import mqtt from 'mqtt'
import { resolveConfig } from '../../src/config/resolve.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { makePki, type Pki } from '../helpers/certs.js'
import { DEVICES, PEER_GATEWAY, startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

type Presence = { online: boolean; at: number; reason?: string }

const { track } = trackRawClients()

let madePki: Pki | undefined
/** The file's test PKI: made once (several openssl runs), only read by the tests. */
const testPki = (): Pki => (madePki ??= makePki())

/** Sends a message to `server` and returns the status the gateway answered with. */
async function send(c: RawClient, msgId: number, targetId = 'server', payload: unknown = { n: msgId }) {
  c.sendFrame(Cmd.JSON_MESSAGE, msgId, { targetId, payload })
  return c.response(msgId)
}

describe('security: TLS for devices', () => {
  let pki: Pki
  before(function () {
    this.timeout(20_000)
    pki = testPki()
  })

  it('serves devices over TLS only when the plain port is off, and publishes their messages', async () => {
    const gw = await startGateway({
      port: 'off',
      tlsPort: 0,
      tlsCert: pki.server.cert,
      tlsKey: pki.server.key,
    })
    try {
      expect(gw.tlsPort).to.be.a('number')
      expect(gw.port).to.equal(gw.tlsPort)
      const w = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/dev-1/up'])
      const c = await track(RawClient.connectTls(gw.tlsPort!, { ca: pki.caPem }))
      expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
      expect(await send(c, 1, 'server', { over: 'tls' })).to.equal(0)
      expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ over: 'tls' })
      await w.end()
    } finally {
      await gw.close()
    }
  })

  it('requires a client certificate signed by the CA when tlsClientAuth is require', async () => {
    const gw = await startGateway({
      tlsPort: 0,
      tlsCert: pki.server.cert,
      tlsKey: pki.server.key,
      tlsCa: pki.ca,
      tlsClientAuth: 'require',
    })
    try {
      const without = RawClient.connectTls(gw.tlsPort!, { ca: pki.caPem })
      // TLS 1.3: the refusal may surface at the handshake or as the connection closes right after.
      const refused = await without.then(
        async (c) => {
          await track(c)
          await c.waitClosed()
          return c.received.length === 0
        },
        () => true,
      )
      expect(refused).to.equal(true)
      await waitUntil(
        () => (gw.stats().refused.tls_handshake_failed ?? 0) > 0,
        'the failed handshake is counted',
      )
      const c = await track(
        RawClient.connectTls(gw.tlsPort!, {
          ca: pki.caPem,
          cert: readFileSync(pki.client.cert),
          key: readFileSync(pki.client.key),
        }),
      )
      expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
    } finally {
      await gw.close()
    }
  })

  it('reloads its certificate without dropping connected devices', async () => {
    const config = { tlsPort: 0 as const, tlsCert: pki.server.cert, tlsKey: pki.server.key }
    const gw = await startGateway(config)
    try {
      const before = await track(RawClient.connectTls(gw.tlsPort!, { ca: pki.caPem }))
      expect(await before.login('tok-1')).to.equal(Status.SUCCESS)
      const oldCert = (before.socket as TLSSocket).getPeerCertificate().fingerprint256
      const result = gw.reload({ ...gw.config, tlsCert: pki.server2.cert, tlsKey: pki.server2.key })
      expect(result).to.deep.equal({ kicked: 0, needsRestart: [] })
      const after = await track(RawClient.connectTls(gw.tlsPort!, { ca: pki.caPem }))
      expect((after.socket as TLSSocket).getPeerCertificate().fingerprint256).to.not.equal(oldCert)
      expect(await after.login('tok-2')).to.equal(Status.SUCCESS)
      expect(await send(before, 1)).to.equal(0) // the first device never noticed
      expect(before.isClosed).to.equal(false)
    } finally {
      await gw.close()
    }
  })
})

describe('security: the embedded broker', () => {
  let pki: Pki
  before(function () {
    this.timeout(20_000)
    pki = testPki()
  })

  it('requires MQTT clients to log in, over TCP and TLS; the gateway itself is not subject to it', async () => {
    const gw = await startGateway({
      brokerUsername: 'legacy-ops',
      brokerPassword: 's3cret-pw',
      anonymousRole: 'none',
      brokerTlsPort: 0,
      tlsCert: pki.server.cert,
      tlsKey: pki.server.key,
    })
    try {
      const url = `mqtt://127.0.0.1:${gw.brokerPort}`
      for (const [auth, code] of [
        [{}, 5], // not authorized: anonymous clients are refused
        [{ username: 'legacy-ops', password: 'wrong' }, 4], // bad user name or password
        [{ username: 'x', password: 's3cret-pw' }, 4],
      ] as const) {
        let error: (Error & { code?: number }) | undefined
        await mqtt.connectAsync(url, { ...auth, reconnectPeriod: 0 }).then(
          (c) => c.endAsync(),
          (err: Error & { code?: number }) => {
            error = err
          },
        )
        expect(error, JSON.stringify(auth)).to.not.equal(undefined)
        expect(error?.code, JSON.stringify(auth)).to.equal(code)
      }
      const tlsUrl = `mqtts://localhost:${gw.brokerTlsPort}`
      const sub = await mqtt.connectAsync(tlsUrl, {
        username: 'legacy-ops',
        password: 's3cret-pw',
        ca: pki.caPem,
        reconnectPeriod: 0,
      })
      try {
        await sub.subscribeAsync('hypertcp/+/up', { qos: 1 })
        const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())))
        const c = await track(RawClient.connect(gw.port))
        expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
        expect(await send(c, 1, 'server', { through: 'auth' })).to.equal(0)
        expect(JSON.parse(await got)).to.deep.equal({ through: 'auth' })
      } finally {
        await sub.endAsync()
      }
    } finally {
      await gw.close()
    }
  })

  it('serves another gateway over TLS (mqttCa): its pipelined uplinks are acknowledged once accepted', async () => {
    // The first gateway's embedded broker, on TLS, is the second gateway's external broker.
    const host = await startGateway({
      brokerTlsPort: 0,
      tlsCert: pki.server.cert,
      tlsKey: pki.server.key,
      brokerUsers: [{ ...PEER_GATEWAY, role: 'gateway' }],
    })
    const gw = await startGateway({
      gatewayId: 'gw-tls',
      mqttUrl: `mqtts://localhost:${host.brokerTlsPort}`,
      mqttCa: pki.ca,
      mqttUsername: PEER_GATEWAY.username,
      mqttPassword: PEER_GATEWAY.password,
    })
    try {
      const w = await MqttWatcher.connect(host.mqttUrl, ['hypertcp/dev-1/up'])
      try {
        const c = await track(RawClient.connect(gw.port))
        expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
        // 16 in flight: their PUBACKs come back over TLS, several per read (puback-tap.ts).
        for (let round = 0; round < 4; round++) {
          const ids = Array.from({ length: 16 }, (_, i) => 2 + round * 16 + i)
          for (const id of ids) c.sendFrame(Cmd.JSON_MESSAGE, id, { targetId: 'server', payload: { id } })
          for (const id of ids) expect(await c.response(id), `message ${id}`).to.equal(0)
        }
        for (let id = 2; id < 2 + 64; id++) expect(await w.json('hypertcp/dev-1/up')).to.deep.equal({ id })
      } finally {
        await w.end()
      }
    } finally {
      await gw.close()
      await host.close()
    }
  })
})

describe('security: tokens, registry reload, publish ACL', () => {
  it('never logs a token, even at debug level', async () => {
    const { logger, lines } = captureLogger()
    const secret = 'tok-very-secret-1234'
    const gw = await startGateway({ logger, devices: [{ id: 'dev-s', token: secret }] })
    try {
      const good = await track(RawClient.connect(gw.port))
      expect(await good.login(secret)).to.equal(Status.SUCCESS)
      const json = await track(RawClient.connect(gw.port))
      expect(await json.login({ token: secret, device_id: 'dev-s' })).to.equal(Status.SUCCESS)
      const bad = await track(RawClient.connect(gw.port))
      expect(await bad.login('tok-very-secret-1235')).to.equal(Status.INVALID_TOKEN)
    } finally {
      await gw.close()
    }
    expect(lines.length).to.be.greaterThan(5)
    for (const line of lines) {
      expect(line).to.not.contain('tok-very-secret')
    }
  })

  it('closes a connected device whose token a registry reload revoked (kicked), and keeps the others', async () => {
    const gw = await startGateway()
    const w = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/dev-1/status'])
    try {
      const revoked = await track(RawClient.connect(gw.port))
      const kept = await track(RawClient.connect(gw.port))
      expect(await revoked.login('tok-1')).to.equal(Status.SUCCESS)
      expect(await kept.login('tok-2')).to.equal(Status.SUCCESS)
      const since = Date.now()
      const devices = DEVICES.filter((d) => d.id !== 'dev-1')
      const result = gw.reload(resolveConfig([{ source: 'test', values: { ...gw.config, devices } }]))
      expect(result.kicked).to.equal(1)
      await revoked.waitClosed()
      expect(
        await w.json<Presence>('hypertcp/dev-1/status', (p) => !p.online && p.at >= since),
      ).to.deep.include({
        reason: 'kicked',
      })
      expect(await send(kept, 1)).to.equal(0)
      const again = await track(RawClient.connect(gw.port))
      expect(await again.login('tok-1')).to.equal(Status.INVALID_TOKEN)
    } finally {
      await w.end()
      await gw.close()
    }
  })

  it('refuses targetIds that would reach other topics, and what the device ACL does not allow', async () => {
    const gw = await startGateway({
      devices: [
        ...DEVICES,
        { id: 'limited', token: 'tok-l', allowTargets: ['dev-1', 'relay-*'], allowBroadcast: false },
      ],
    })
    try {
      const c = await track(RawClient.connect(gw.port))
      expect(await c.login('tok-l')).to.equal(Status.SUCCESS)
      for (const [i, target] of ['$SYS', '$share', 'dev-1/up', 'dev-+', '#'].entries()) {
        expect(await send(c, 10 + i, target), target).to.equal(Status.ILLEGAL_COMMAND_BODY)
      }
      expect(await send(c, 20, 'dev-1')).to.equal(0)
      expect(await send(c, 21, 'relay-7')).to.equal(0)
      expect(await send(c, 22, 'dev-2')).to.equal(Status.NOT_ALLOWED)
      c.sendFrame(Cmd.BROADCAST, 23, { targetId: 'broadcast', payload: {} })
      expect(await c.response(23)).to.equal(Status.NOT_ALLOWED)
      expect(await send(c, 24, 'server')).to.equal(0) // its own up topic stays open
    } finally {
      await gw.close()
    }
  })
})

describe('security: abuse from one address', () => {
  it('bans an address after repeated login failures; its logins, good tokens too, get QUOTA_LIMIT', async () => {
    const gw = await startGateway({ rateLimitExempt: [], loginFailureLimit: 3, loginBanTime: 60 })
    try {
      for (let i = 0; i < 3; i++) {
        const c = await track(RawClient.connect(gw.port))
        expect(await c.login(`guess-${i}`)).to.equal(Status.INVALID_TOKEN)
      }
      const c = await track(RawClient.connect(gw.port))
      expect(await c.login('tok-1')).to.equal(Status.QUOTA_LIMIT)
      await c.waitClosed()
      expect(gw.stats().closes.rate_limited).to.equal(1)
    } finally {
      await gw.close()
    }
  })

  it('closes connections beyond the per-address rate at once, without reading them', async () => {
    const gw = await startGateway({ rateLimitExempt: [], ipConnectionRate: 1, ipConnectionBurst: 5 })
    try {
      const all = await Promise.all(Array.from({ length: 15 }, () => track(RawClient.connect(gw.port))))
      await waitUntil(() => (gw.stats().refused.rate_limited ?? 0) >= 9, 'the excess connections are refused')
      const open = all.filter((c) => !c.isClosed)
      expect(open.length).to.be.at.most(6)
      expect(await open[0]!.login('tok-1')).to.equal(Status.SUCCESS) // the admitted ones work
    } finally {
      await gw.close()
    }
  })

  it('applies deny and allow lists before reading anything', async () => {
    for (const lists of [{ denyCidrs: ['127.0.0.0/8'] }, { allowCidrs: ['10.0.0.0/8'] }]) {
      const gw = await startGateway(lists)
      try {
        const c = await track(RawClient.connect(gw.port))
        c.sendFrame(Cmd.LOGIN, 1, Buffer.from('tok-1'))
        await c.waitClosed()
        expect(c.received.length, JSON.stringify(lists)).to.equal(0)
        expect(gw.stats().refused.denied).to.equal(1)
      } finally {
        await gw.close()
      }
    }
  })
})
