import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { BROKER_ADMIN, startGateway } from '../helpers/gateway.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { freePort } from '../helpers/net.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

interface HookRequest {
  token: string
  deviceId: string | null
  ip: string
  gatewayId: string
}

/**
 * A user's auth service, for real over HTTP: `answer` decides what each request gets (a status and
 * a JSON body), or `hold` keeps it unanswered until the test releases it.
 */
class Hook {
  readonly requests = new Inbox<HookRequest>('auth hook requests')
  answer: (r: HookRequest) => { status: number; body?: unknown } | 'hold' = () => ({
    status: 200,
    body: { allow: false },
  })
  private held: (() => void)[] = []
  inFlight = 0
  maxInFlight = 0

  private constructor(private readonly server: Server) {}

  static async start(): Promise<Hook> {
    let hook: Hook | undefined
    const server = createServer((req, res) => hook!.handle(req, res))
    hook = new Hook(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return hook
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}/auth`
  }

  release(): void {
    for (const r of this.held.splice(0)) r()
  }

  close(): Promise<void> {
    this.release()
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = ''
    for await (const chunk of req) text += chunk
    const request = JSON.parse(text) as HookRequest
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    this.requests.push(request)
    let decision = this.answer(request)
    while (decision === 'hold') {
      await new Promise<void>((resolve) => this.held.push(resolve))
      decision = this.answer({ ...request, token: `${request.token}#released` })
    }
    this.inFlight--
    res
      .writeHead(decision.status, { 'content-type': 'application/json' })
      .end(JSON.stringify(decision.body ?? {}))
  }
}

describe("external auth hook (authUrl): what the user's service answers decides the login", function () {
  this.timeout(20_000)
  let hook: Hook
  let gw: Gateway
  const log = captureLogger()
  const clients = trackRawClients()

  before(async () => {
    hook = await Hook.start()
    gw = await startGateway({
      authUrl: hook.url,
      authTimeout: 0.3,
      authCacheTtl: 60,
      authConcurrency: 2,
      blynkPort: 0,
      logger: log.logger,
    })
  })
  after(async () => {
    await gw?.close()
    await hook?.close()
  })

  async function login(token: string | object): Promise<{ client: RawClient; status: number }> {
    const client = await clients.track(RawClient.connect(gw.port))
    return { client, status: await client.login(token) }
  }

  it('logs in a token the registry does not know with the identity the hook gives, told the claim, ip and gateway', async () => {
    hook.answer = (r) =>
      r.token === 'hook-ok-1'
        ? {
            status: 200,
            body: { allow: true, deviceId: 'from-hook', username: 'acme', allowBroadcast: false },
          }
        : { status: 200, body: { allow: false } }
    const watcher = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/from-hook/up'])
    try {
      const { client, status } = await login({ token: 'hook-ok-1', device_id: 'claimed' })
      expect(status).to.equal(Status.SUCCESS)
      const asked = await hook.requests.take((r) => r.token === 'hook-ok-1')
      expect(asked).to.deep.equal({
        token: 'hook-ok-1',
        deviceId: 'claimed',
        ip: '127.0.0.1',
        gatewayId: gw.config.gatewayId,
      })
      client.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'server', payload: { via: 'hook' } })
      expect(await client.response(2)).to.equal(0)
      expect(await watcher.json('hypertcp/from-hook/up')).to.deep.equal({ via: 'hook' })
      client.sendFrame(Cmd.BROADCAST, 3, { targetId: 'broadcast', payload: {} })
      expect(await client.response(3), "the hook's allowBroadcast: false").to.equal(Status.NOT_ALLOWED)
    } finally {
      await watcher.end()
    }
  })

  it('decides Blynk logins too: answered in the Blynk form (the status in the length field)', async () => {
    hook.answer = (r) =>
      r.token === 'blynk-hook-ok'
        ? { status: 200, body: { allow: true, deviceId: 'blynk-from-hook' } }
        : { status: 200, body: { allow: false } }
    const HW_LOGIN = 29
    const ok = await clients.track(RawClient.connect(gw.blynkPort!))
    ok.sendFrame(HW_LOGIN, 1, Buffer.from('blynk-hook-ok'))
    expect(await ok.response(1)).to.equal(Status.SUCCESS)
    expect(await hook.requests.take((r) => r.token === 'blynk-hook-ok')).to.deep.include({ deviceId: null })
    await waitUntil(() => gw.stats().onlineByDialect.blynk === 1, 'the Blynk device online')
    const refused = await clients.track(RawClient.connect(gw.blynkPort!))
    refused.sendFrame(HW_LOGIN, 1, Buffer.from('blynk-hook-no'))
    expect(await refused.response(1)).to.equal(Status.INVALID_TOKEN)
    await refused.waitClosed()
  })

  it('applies the downlink limits the hook gives (maxDownlinkMembers, maxDownlinkSize)', async () => {
    hook.answer = () => ({
      status: 200,
      body: { allow: true, deviceId: 'hook-small', maxDownlinkMembers: 2, maxDownlinkSize: 100 },
    })
    const watcher = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
    try {
      const { client, status } = await login('hook-limits-1')
      expect(status).to.equal(Status.SUCCESS)
      await watcher.publish('hypertcp/hook-small/dn', '{"a":1,"b":2,"c":3}')
      await watcher.publish('hypertcp/hook-small/dn', JSON.stringify({ s: 'x'.repeat(100) }))
      await watcher.publish('hypertcp/hook-small/dn', '{"a":1,"b":2}')
      const f = await client.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
      expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { a: 1, b: 2 } })
      expect(gw.stats().droppedBy).to.deep.include({ too_many_members: 1, too_large: 1 })
    } finally {
      await watcher.end()
    }
  })

  it('refuses a hook answer with a bad downlink limit as a bad answer (SERVER_ERROR)', async () => {
    hook.answer = () => ({ status: 200, body: { allow: true, deviceId: 'hook-bad', maxDownlinkMembers: -1 } })
    const { status } = await login('hook-limits-bad')
    expect(status).to.equal(Status.SERVER_ERROR)
  })

  it('refuses what the hook refuses (allow false, 401, 403) with INVALID_TOKEN', async () => {
    for (const [token, status] of [
      ['no-1', 200],
      ['no-2', 401],
      ['no-3', 403],
    ] as const) {
      hook.answer = () => ({ status, body: { allow: false } })
      const r = await login(token)
      expect(r.status, token).to.equal(Status.INVALID_TOKEN)
      await r.client.waitClosed()
    }
  })

  it('answers SERVER_ERROR, and closes, when the hook fails: a 5xx, a bad answer, or no answer in time', async () => {
    const closes = () => gw.stats().closes.auth_unavailable ?? 0
    const before = closes()
    for (const answer of [
      () => ({ status: 500 }),
      () => ({ status: 200, body: { allow: 'yes' } }),
      () => ({ status: 200, body: { allow: true, deviceId: 'a/b' } }),
      () => 'hold' as const,
    ]) {
      hook.answer = answer
      const r = await login(`fail-${before}-${hook.requests.history.length}`)
      expect(r.status).to.equal(Status.SERVER_ERROR)
      await r.client.waitClosed()
    }
    hook.release()
    expect(closes()).to.equal(before + 4)
  })

  it('reuses a positive answer, and shares one call between identical logins in flight', async () => {
    hook.answer = () => ({ status: 200, body: { allow: true, deviceId: 'cached-1' } })
    await login('cache-me')
    await login('cache-me') // takes the first over; the answer came from the cache
    expect(hook.requests.history.filter((r) => r.token === 'cache-me')).to.have.length(1)
    let answerNow = false
    hook.answer = (r) =>
      r.token.endsWith('#released') || answerNow
        ? { status: 200, body: { allow: true, deviceId: 'shared-1' } }
        : 'hold'
    const a = login('share-me')
    const b = login('share-me')
    await hook.requests.take((r) => r.token === 'share-me')
    answerNow = true
    hook.release()
    // One identity for both: the later login takes the earlier over (before or after its reply).
    const settled = await Promise.allSettled([a, b])
    const ok = settled.filter((r) => r.status === 'fulfilled' && r.value.status === Status.SUCCESS)
    expect(ok.length).to.be.at.least(1)
    expect(hook.requests.history.filter((r) => r.token === 'share-me')).to.have.length(1)
  })

  it('does not ask the hook about tokens of the registry, and never logs a token', async () => {
    const asked = hook.requests.history.length
    expect((await login('tok-1')).status).to.equal(Status.SUCCESS)
    expect(hook.requests.history).to.have.length(asked)
    const tokens = hook.requests.history.map((r) => r.token.split('#')[0]!)
    for (const t of [...tokens, 'tok-1']) expect(log.lines.join('\n'), t).to.not.contain(t)
  })
})

describe('external auth hook: at most authConcurrency calls in flight', function () {
  this.timeout(20_000)
  it('sends the next login to the hook only when one of the two in flight is answered', async () => {
    const hook = await Hook.start()
    const gw = await startGateway({ authUrl: hook.url, authConcurrency: 2, authTimeout: 10 })
    const clients: RawClient[] = []
    try {
      hook.answer = (r) =>
        r.token.endsWith('#released')
          ? { status: 200, body: { allow: true, deviceId: r.token.split('#')[0]! } }
          : 'hold'
      const logins = ['c-1', 'c-2', 'c-3', 'c-4'].map(async (t) => {
        const c = await RawClient.connect(gw.port)
        clients.push(c)
        return c.login(t)
      })
      await hook.requests.take()
      await hook.requests.take()
      // Every LOGIN has reached the gateway: without the bound, all four would be at the hook.
      await waitUntil(() => gw.stats().framesByType[Cmd.LOGIN] === 4, 'the four LOGINs read')
      const third = await hook.requests.take(() => true, 300).catch(() => undefined)
      expect(third, 'a third call while two are in flight').to.equal(undefined)
      hook.release()
      await hook.requests.take()
      await hook.requests.take()
      hook.release()
      expect(await Promise.all(logins)).to.deep.equal([200, 200, 200, 200])
      expect(hook.maxInFlight).to.equal(2)
    } finally {
      for (const c of clients) c.destroy()
      await gw.close()
      await hook.close()
    }
  })
})

describe('external auth hook and store-and-forward', function () {
  this.timeout(20_000)
  const clients = trackRawClients()

  it("keeps for a hook's device once it has logged in on this instance, and still after a restart", async () => {
    const hook = await Hook.start()
    hook.answer = () => ({ status: 200, body: { allow: true, deviceId: 'hooked-1' } })
    const dir = mkdtempSync(join(tmpdir(), 'hypertcp-hook-store-'))
    const options = { authUrl: hook.url, authCacheTtl: 0, offlineQueueMessages: 100, dataDir: dir }
    let gw = await startGateway(options)
    try {
      const w = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
      await w.publish('hypertcp/hooked-1/dn', '{"before":"first login"}')
      expect(gw.stats().kept).to.equal(0) // unknown until it logs in here
      const first = await clients.track(RawClient.connect(gw.port))
      expect(await first.login('hook-token')).to.equal(Status.SUCCESS)
      first.destroy()
      await waitUntil(() => gw.stats().online === 0, 'it left')
      await w.publish('hypertcp/hooked-1/dn', '{"while":"away"}')
      await waitUntil(() => gw.stats().keptNow === 1, 'kept for it')
      await w.end()
      await gw.close()
      gw = await startGateway(options)
      const w2 = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
      await w2.publish('hypertcp/hooked-1/dn', '{"after":"restart"}')
      await w2.end()
      const again = await clients.track(RawClient.connect(gw.port))
      expect(await again.login('hook-token')).to.equal(Status.SUCCESS)
      const got = [
        await again.frames.take((f) => f.type === Cmd.JSON_MESSAGE),
        await again.frames.take((f) => f.type === Cmd.JSON_MESSAGE),
      ].map((f) => (JSON.parse(f.text) as { payload: unknown }).payload)
      expect(got).to.deep.equal([{ while: 'away' }, { after: 'restart' }])
    } finally {
      await gw.close()
      await hook.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('external auth hook: unreachable', function () {
  this.timeout(20_000)
  it('answers SERVER_ERROR when nothing listens at authUrl', async () => {
    const gw = await startGateway({ authUrl: `http://127.0.0.1:${await freePort()}/auth` })
    try {
      const c = await RawClient.connect(gw.port)
      expect(await c.login('unknown-token')).to.equal(Status.SERVER_ERROR)
      await c.waitClosed()
      expect(gw.stats().closes.auth_unavailable).to.equal(1)
    } finally {
      await gw.close()
    }
  })
})
