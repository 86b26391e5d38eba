/**
 * `workers`: the CLI as a primary and two worker processes sharing the device port (node:cluster),
 * with the embedded broker in the primary (the workers reach it over loopback MQTT) and with
 * Mosquitto: devices on both workers, device to device between them, a takeover across them, a
 * worker SIGKILLed and restarted, a clean stop, and a primary killed taking its workers with it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import { laneIndex } from '../../src/bridge/lanes.js'
import { useCleanups } from '../helpers/cleanups.js'
import { CliProcess, requireBuild } from '../helpers/cli.js'
import { BROKER_ADMIN, DEVICES, TEST_BROKER_USERS } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { Mosquitto, requireMosquitto } from '../helpers/mosquitto.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { OriginalDevice } from '../helpers/original-device.js'
import { writeStore } from '../helpers/store.js'

type Presence = { online: boolean; gateway: string; reason?: string }

/** Whether a process is gone. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch {
    return true
  }
}

/** Every worker pid the primary logged starting, by worker number, oldest first. */
function startedPids(cli: CliProcess): Map<number, number[]> {
  const pids = new Map<number, number[]>()
  for (const line of cli.lines.history) {
    const m = /worker (\d+) started pid=(\d+)/.exec(line)
    if (m) pids.set(Number(m[1]), [...(pids.get(Number(m[1])) ?? []), Number(m[2])])
  }
  return pids
}

interface Running {
  readonly cli: CliProcess
  readonly port: number
  readonly mqttUrl: string
  readonly gatewayId: string
  /** Worker pids by worker number, once all were ready. */
  readonly pids: Map<number, number>
  /** The primary's admin listener. */
  readonly admin: number
}

/**
 * A device's online presence published by `run`'s workers: Mosquitto keeps the suite's retained
 * presences, and a test before may have left one saying "online" at its own gateway (killed before
 * its devices' offline presence went out).
 */
function onlineAt(run: Running): (p: Presence) => boolean {
  return (p) => p.online && p.gateway.startsWith(`${run.gatewayId}-w`)
}

/** GET (or another method on) the primary's admin listener: status and JSON body (or text). */
async function call(
  run: Running,
  path: string,
  method = 'GET',
  body?: string,
  // biome-ignore lint/suspicious/noExplicitAny: each caller reads the fields its endpoint answers
): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`http://127.0.0.1:${run.admin}${path}`, {
    method,
    ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, body: json, text }
}

for (const broker of ['embedded', 'mosquitto'] as const) {
  describe(`workers: a primary and 2 workers (${broker} broker)`, function () {
    this.timeout(30000)
    const cleanups = useCleanups()
    let dir: string
    let mosquitto: Mosquitto | undefined

    before(async function () {
      requireBuild()
      if (broker === 'mosquitto') {
        requireMosquitto(this)
        mosquitto = await Mosquitto.start()
      }
      dir = mkdtempSync(join(tmpdir(), 'htgw-workers-'))
      writeFileSync(
        join(dir, 'gw.json'),
        JSON.stringify({ devices: DEVICES, brokerUsers: TEST_BROKER_USERS }),
      )
    })
    after(async () => {
      await mosquitto?.dispose()
      rmSync(dir, { recursive: true, force: true })
    })

    /** The CLI's arguments for 2 workers on `port`, with the suite's config file. */
    const twoWorkers = (port: string) => [
      '--config',
      join(dir, 'gw.json'),
      '--workers',
      '2',
      '--host',
      '127.0.0.1',
      '--port',
      port,
    ]

    let starts = 0
    /**
     * The CLI with 2 workers; a gateway id of its own unless `gatewayId` is given: Mosquitto keeps
     * the sessions of the workers' client ids (store-and-forward), and a test's gateway would
     * otherwise get the subscriptions a test before left in them.
     */
    async function start(extra: string[] = [], gatewayId = `wk-${broker}-${++starts}`): Promise<Running> {
      const cli = CliProcess.start([
        ...twoWorkers('0'),
        '--gateway-id',
        gatewayId,
        '--admin-host',
        '127.0.0.1',
        '--admin-port',
        '0',
        ...extra,
        '--log-level',
        process.env.HTGW_TEST_LOG === 'debug' ? 'debug' : 'info',
        ...(mosquitto
          ? ['--mqtt-url', mosquitto.url]
          : ['--broker-host', '127.0.0.1', '--broker-port', '0', '--broker-ws-port', 'off']),
      ])
      cleanups.push(async () => {
        if (cli.child.exitCode === null) {
          cli.kill('SIGKILL')
          await cli.exited
        }
        // Its workers go with it, every one it started; the next test's reuse their gateway ids
        // (and so their MQTT client ids): none may be left connected.
        await waitUntil(
          () => [...startedPids(cli).values()].flat().every(gone),
          'the workers have exited',
          10000,
        )
      })
      const mqttUrl = mosquitto
        ? mosquitto.url
        : `mqtt://127.0.0.1:${(await cli.match(/embedded MQTT broker listening on 127\.0\.0\.1:(\d+)/))[1]}`
      const admin = Number((await cli.match(/admin listener .* on http:\/\/127\.0\.0\.1:(\d+)/))[1])
      const port = Number((await cli.match(/HyperTCP listening on 127\.0\.0\.1:(\d+)/))[1])
      await cli.match(/gateway started .*workers=2/)
      const pids = new Map([...startedPids(cli)].map(([n, all]) => [n, all.at(-1)!]))
      expect([...pids.keys()].sort()).to.deep.equal([1, 2])
      return { cli, port, mqttUrl, gatewayId, pids, admin }
    }

    async function watch(run: Running, ...topics: string[]): Promise<MqttWatcher> {
      const w = await MqttWatcher.connect(run.mqttUrl, topics, mosquitto ? undefined : BROKER_ADMIN)
      cleanups.push(() => w.end())
      return w
    }

    /** dev-1, dev-3 and dev-4 logged in one after the other, and the gateway (worker) each is on. */
    async function threeDevices(
      run: Running,
    ): Promise<{ devices: Map<string, OriginalDevice>; where: Map<string, string> }> {
      const w = await watch(run, 'hypertcp/+/status')
      const devices = new Map<string, OriginalDevice>()
      const where = new Map<string, string>()
      for (const [id, token] of [
        ['dev-1', 'tok-1'],
        ['dev-3', 'tok-3'],
        ['dev-4', 'tok-4'],
      ] as const) {
        devices.set(id, await device(run, token))
        where.set(id, (await w.json<Presence>(`hypertcp/${id}/status`, onlineAt(run))).gateway)
      }
      return { devices, where }
    }

    async function device(run: Running, token: string): Promise<OriginalDevice> {
      const d = await OriginalDevice.connect(run.port, token, { pingIntervalMs: 0 })
      cleanups.push(() => d.destroy())
      expect(d.loginStatus).to.equal(200)
      return d
    }

    it('spreads devices over both workers, which reach one another through the broker', async () => {
      const run = await start()
      const { devices, where } = await threeDevices(run)
      const gateways = new Set(where.values())
      expect([...gateways].sort(), 'connections are spread over both workers').to.have.members([
        ...[...gateways].filter((g) => /-w[12]$/.test(g)),
      ])
      expect(gateways.size).to.equal(2)
      // Device to device across workers, both ways.
      const ids = [...where.keys()]
      const a = ids.find((id) => where.get(id)!.endsWith('-w1'))!
      const b = ids.find((id) => where.get(id)!.endsWith('-w2'))!
      devices.get(a)!.sendMessage(b, { hello: b })
      const got = await devices.get(b)!.events.take((e) => e.kind === 'message', 5000, 'the message')
      expect(got).to.deep.include({ from: a, payload: { hello: b } })
      devices.get(b)!.sendMessage(a, { back: a })
      const back = await devices.get(a)!.events.take((e) => e.kind === 'message', 5000, 'the answer')
      expect(back).to.deep.include({ from: b, payload: { back: a } })

      // One view for operators: the primary's admin listener sees every worker.
      expect((await call(run, '/readyz')).body).to.deep.equal({ status: 'ready' })
      const listed = (await call(run, '/api/v1/devices')).body as { devices: { id: string }[] }
      expect(listed.devices.map((d) => d.id)).to.deep.equal(['dev-1', 'dev-3', 'dev-4'])
      // Pages over both workers (each asked for its first limit + 1 after the cursor), and one device.
      const pageOf = async (query: string) => {
        const { devices, next } = (await call(run, `/api/v1/devices?${query}`)).body
        return { ids: (devices as { id: string }[]).map((d) => d.id), next }
      }
      expect(await pageOf('limit=2')).to.deep.equal({ ids: ['dev-1', 'dev-3'], next: 'dev-3' })
      expect(await pageOf('limit=2&cursor=dev-3')).to.deep.equal({ ids: ['dev-4'], next: null })
      expect(await pageOf('limit=1&cursor=dev-1')).to.deep.equal({ ids: ['dev-3'], next: 'dev-3' })
      expect(await pageOf('prefix=dev-4')).to.deep.equal({ ids: ['dev-4'], next: null })
      const one = await call(run, `/api/v1/devices/${b}`)
      expect(one.status).to.equal(200)
      expect(one.body).to.include({ id: b, dialect: 'hypertcp' })
      expect((await call(run, '/api/v1/devices/dev-2')).status).to.equal(404)
      const metrics = (await call(run, '/metrics')).text
      expect(metrics).to.match(/^hypertcp_devices_connected 3$/m)
      expect(metrics).to.match(/^hypertcp_logins_total\{result="ok"\} 3$/m)
      const stats = (await call(run, '/api/v1/stats')).body as {
        online: number
        workers: { worker: number; online: number }[]
      }
      expect(stats.online).to.equal(3)
      expect(stats.workers.map((w) => w.online).sort()).to.deep.equal([1, 2])
      // A message and a kick reach the device on whichever worker it is.
      const sent = await call(run, `/api/v1/devices/${b}/messages`, 'POST', '{"payload":{"from":"ops"}}')
      expect(sent.status).to.equal(202)
      const msg = await devices.get(b)!.events.take((e) => e.kind === 'message', 5000, 'the admin message')
      expect(msg).to.deep.include({ from: 'server', payload: { from: 'ops' } })
      expect((await call(run, `/api/v1/devices/${a}`, 'DELETE')).status).to.equal(204)
      await devices.get(a)!.closed
      expect((await call(run, `/api/v1/devices/${a}`, 'DELETE')).status).to.equal(404)
    })

    it("takes the devices' connections on the workers themselves with workerBalancing kernel", async () => {
      const run = await start(['--worker-balancing', 'kernel'])
      expect(run.cli.lines.history.some((l) => /gateway started .*balancing=kernel/.test(l))).to.equal(true)
      const { devices } = await threeDevices(run)
      // Which worker takes which is the kernel's choice; every one is served, and counted once.
      const stats = (await call(run, '/api/v1/stats')).body as {
        online: number
        workers: { worker: number; online: number }[]
      }
      expect(stats.online).to.equal(3)
      expect(stats.workers.map((x) => x.online).reduce((a, b) => a + b, 0)).to.equal(3)
      devices.get('dev-1')!.sendMessage('dev-3', { hello: 'dev-3' })
      const got = await devices.get('dev-3')!.events.take((e) => e.kind === 'message', 5000, 'the message')
      expect(got).to.deep.include({ from: 'dev-1', payload: { hello: 'dev-3' } })
    })

    it('ends a device id logged in on both workers with one connection (takeover across them)', async () => {
      const run = await start()
      const w = await watch(run, 'hypertcp/dev-1/status')
      const first = await device(run, 'tok-1')
      const firstAt = (await w.json<Presence>('hypertcp/dev-1/status', onlineAt(run))).gateway
      // Connections alternate between the workers: log in again until one lands on the other.
      let second: OriginalDevice | undefined
      for (let i = 0; i < 6 && second === undefined; i++) {
        const d = await device(run, 'tok-1')
        const at = (await w.json<Presence>('hypertcp/dev-1/status', onlineAt(run))).gateway
        if (at !== firstAt) second = d
      }
      expect(second, 'a login on the other worker').to.not.equal(undefined)
      await first.closed // taken over by the other worker, through the broker
      await waitUntil(() => second!.isLoggedIn, 'the newer connection stays')
      expect(second!.socket.destroyed).to.equal(false)
    })

    it('restarts a worker killed with SIGKILL; only its devices are cut, and they log in again', async () => {
      const run = await start()
      const w = await watch(run, 'hypertcp/+/status')
      const one = await device(run, 'tok-1')
      const oneAt = (await w.json<Presence>('hypertcp/dev-1/status', onlineAt(run))).gateway
      let other: OriginalDevice | undefined
      for (const token of ['tok-3', 'tok-4', 'tok-2']) {
        const d = await device(run, token)
        const id = { 'tok-3': 'dev-3', 'tok-4': 'dev-4', 'tok-2': 'dev-2' }[token]!
        const at = (await w.json<Presence>(`hypertcp/${id}/status`, onlineAt(run))).gateway
        if (at !== oneAt) {
          other = d
          break
        }
      }
      expect(other, 'a device on the other worker').to.not.equal(undefined)
      const victim = Number(oneAt.slice(-1))
      const pid = run.pids.get(victim)!
      process.kill(pid, 'SIGKILL')
      await one.closed
      await run.cli.match(new RegExp(`worker ${victim} exited: restarting it`))
      const down = await call(run, '/readyz')
      expect(down.status).to.equal(503)
      expect(down.body.missing).to.include(`worker ${victim} is not ready`)
      const restarted = await run.cli.lines.take(
        (l) => l.includes(`worker ${victim} started`) && !l.includes(`pid=${pid}`),
        10000,
        'the restart',
      )
      const newPid = /pid=(\d+)/.exec(restarted)![1]!
      expect(other!.socket.destroyed, "the other worker's device keeps its connection").to.equal(false)
      // Back: the device logs in again (on either worker).
      await waitUntil(() => gone(pid), 'the killed worker is gone')
      const again = await OriginalDevice.connect(run.port, 'tok-1', { pingIntervalMs: 0 })
      cleanups.push(() => again.destroy())
      expect(again.loginStatus).to.equal(200)
      await run.cli.lines.take(
        (l) => l.includes(`worker ${victim} ready pid=${newPid}`),
        10000,
        'ready again',
      )
      expect((await call(run, '/readyz')).body).to.deep.equal({ status: 'ready' })
    })

    it('keeps a message for a device never seen in one worker only: it arrives once', async () => {
      // Every worker holds the registry's devices, but each never-seen one is kept for by one of
      // them (by its id): two keepers would both deliver it (one replaying, one handing over).
      if (mosquitto) {
        // Never seen: no presence left on the suite's broker by the tests before.
        const clear = await MqttWatcher.connect(mosquitto.url)
        await clear.publish('hypertcp/dev-3/status', '', true)
        await clear.end()
      }
      const data = mkdtempSync(join(dir, 'data-'))
      const run = await start(['--data-dir', data, '--offline-queue-messages', '10'])
      const w = await watch(run)
      await w.publish('hypertcp/dev-3/dn', '{"kept":1}')
      const dev = await device(run, 'tok-3')
      const got = await dev.events.take((e) => e.kind === 'message', 5000, 'the kept message')
      expect(got).to.deep.include({ payload: { kept: 1 } })
      // A message sent after it arrives after any copy of it (kept copies go out at the login).
      await w.publish('hypertcp/dev-3/dn', '{"after":1}')
      await dev.events.take((e) => e.kind === 'message' && 'after' in e.payload, 5000, 'the later message')
      const copies = dev.events.history.filter((e) => e.kind === 'message' && 'kept' in e.payload)
      expect(
        copies,
        `copies ${JSON.stringify(copies)}; the gateway said:\n${run.cli.lines.history.filter((l) => l.includes('dev-3')).join('\n')}`,
      ).to.have.length(1)
      const metrics = (await call(run, '/metrics')).text
      expect(metrics).to.match(/^hypertcp_downlinks_kept_total\{event="acknowledged"\} [12]$/m)
    })

    /**
     * dev-2 logged in on the worker its id does not hash to (connections alternate between the
     * workers), with no presence of it left by the tests before; `kill` ends that worker (or the
     * whole gateway), then dev-2's presence must be put right (it said "online" at a worker that is
     * gone) and a message sent while it is away must be kept, and arrive once.
     */
    async function keptAfter(
      kill: (run: Running, worker: number, data: string) => Promise<Running>,
    ): Promise<void> {
      const id = 'dev-2'
      if (mosquitto) {
        const clear = await MqttWatcher.connect(mosquitto.url)
        await clear.publish(`hypertcp/${id}/status`, '', true)
        await clear.end()
      }
      const data = mkdtempSync(join(dir, 'data-'))
      const run = await start(['--data-dir', data])
      const w = await watch(run, 'hypertcp/+/status')
      const keeper = laneIndex(id, 2) + 1
      let moved: OriginalDevice | undefined
      let worker = keeper
      for (let i = 0; i < 6 && worker === keeper; i++) {
        moved?.destroy()
        moved = await device(run, 'tok-2')
        worker = Number((await w.json<Presence>(`hypertcp/${id}/status`, onlineAt(run))).gateway.slice(-1))
      }
      expect(worker, 'a login on the worker that does not keep for its id').to.not.equal(keeper)
      const after = await kill(run, worker, data)
      await moved!.closed
      const lost = await w.json<Presence>(
        `hypertcp/${id}/status`,
        (p) => p.reason === 'connection_lost',
        15000,
      )
      expect(lost).to.deep.include({ online: false })
      expect(lost.gateway).to.match(new RegExp(`-w${worker}$`))
      await w.publish(`hypertcp/${id}/dn`, '{"kept":2}')
      const again = await device(after, 'tok-2')
      const got = await again.events.take((e) => e.kind === 'message', 5000, 'the message kept meanwhile')
      expect(got).to.deep.include({ payload: { kept: 2 } })
      await w.publish(`hypertcp/${id}/dn`, '{"after":2}')
      await again.events.take((e) => e.kind === 'message' && 'after' in e.payload, 5000, 'the later message')
      expect(again.events.history.filter((e) => e.kind === 'message' && 'kept' in e.payload)).to.have.length(
        1,
      )
    }

    it('keeps for a device whose worker was killed, though another worker keeps for its id at first', () =>
      keptAfter(async (run, worker) => {
        const pid = run.pids.get(worker)!
        process.kill(pid, 'SIGKILL')
        await run.cli.lines.take(
          (l) => l.includes(`worker ${worker} ready`) && !l.includes(`pid=${pid}`),
          10000,
          'the killed worker ready again',
        )
        return run
      }))

    if (broker === 'mosquitto')
      // The embedded broker goes with the gateway, and its presence with it.
      it('keeps for it too when the whole gateway was killed and started again', () =>
        keptAfter(async (run, _worker, data) => {
          const pids = [...run.pids.values()]
          run.cli.kill('SIGKILL')
          await run.cli.exited
          await waitUntil(() => pids.every(gone), 'the workers have exited', 10000)
          return start(['--data-dir', data], run.gatewayId)
        }))

    if (broker === 'embedded')
      // The check itself: test/integration/store-layout.test.ts.
      it('warns at start of what the store of a worker no longer started keeps (workers lowered from 3 to 2)', async () => {
        const data = mkdtempSync(join(dir, 'data-'))
        await writeStore(join(data, 'w3'), { 'dev-3': 2 })
        const run = await start(['--data-dir', data])
        const line = await run.cli.match(/downlink store of another number of workers.*/)
        expect(line[0])
          .to.contain(join(data, 'w3'))
          .and.match(/messages.{0,3}2/)
      })

    it('stops every worker on SIGTERM, cleanly (exit 0, no process left), and says so in its status', async () => {
      const run = await start()
      const statusTopic = `hypertcp/$gateway/${run.gatewayId}/status`
      const w = await watch(run, statusTopic)
      // The gateway's own status, as one gateway's: its id, not a worker's (theirs have -w1, -w2).
      const up = await w.json<{ online: boolean; gateway: string }>(statusTopic, (s) => s.online)
      expect(up.gateway).to.equal(run.gatewayId)
      await device(run, 'tok-1')
      const pids = [...run.pids.values()]
      run.cli.kill('SIGTERM')
      const down = await w.json<{ online: boolean; reason: string }>(statusTopic, (s) => !s.online)
      expect(down.reason).to.equal('shutdown')
      expect(await run.cli.exited).to.equal(0)
      for (const pid of pids) expect(gone(pid), `worker ${pid} gone`).to.equal(true)
    })

    it('fails the start when a worker cannot start (its port taken): exit 1, the reason printed', async () => {
      const taken = createServer()
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
      cleanups.push(() => new Promise((resolve) => taken.close(resolve)))
      const port = (taken.address() as AddressInfo).port
      const cli = CliProcess.start([
        ...twoWorkers(String(port)),
        '--admin-port',
        'off',
        ...(mosquitto ? ['--mqtt-url', mosquitto.url] : ['--broker-port', '0', '--broker-ws-port', 'off']),
      ])
      expect(await cli.exited).to.equal(1)
      expect(cli.lines.history.join('\n')).to.match(
        /HyperTCP listener cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
      )
      await waitUntil(() => [...startedPids(cli).values()].flat().every(gone), 'no worker left', 10000)
    })

    it('takes the workers with it when the primary is killed (no orphans)', async () => {
      const run = await start()
      const statusTopic = `hypertcp/$gateway/${run.gatewayId}/status`
      const w = mosquitto ? await watch(run, statusTopic) : undefined
      await w?.json(statusTopic, (s) => s.online === true)
      const pids = [...run.pids.values()]
      run.cli.kill('SIGKILL')
      await run.cli.exited
      await waitUntil(() => pids.every(gone), 'the workers have exited', 10000)
      // With an external broker, the primary's last will says the gateway is gone.
      const lost = await w?.json<{ online: boolean; reason: string }>(statusTopic, (s) => !s.online)
      if (w) expect(lost?.reason).to.equal('connection_lost')
    })

    if (broker === 'mosquitto')
      it('gives each worker client ids of its own from a configured mqttClientId', async () => {
        const stem = `wk-cid-${starts}`
        const run = await start(['--mqtt-client-id', stem])
        const { devices, where } = await threeDevices(run)
        const a = [...where.keys()].find((id) => where.get(id)!.endsWith('-w1'))!
        const b = [...where.keys()].find((id) => where.get(id)!.endsWith('-w2'))!
        devices.get(a)!.sendMessage(b, { hello: b })
        await devices.get(b)!.events.take((e) => e.kind === 'message', 5000, 'the message across workers')
        // Sharing client ids, each worker's connection would close the other's at the broker.
        const lost = run.cli.lines.history.filter((l) => /connection lost|keeps closing connection/.test(l))
        expect(lost, 'broker connections lost').to.deep.equal([])
      })
  })
}
