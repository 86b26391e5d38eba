/**
 * Devices that are TCP servers, dialed by the gateway (`dialOut`): a device simulated by a small
 * TCP server in the test (text lines, echoing as the seed's ESP8266 example does; raw bytes), and
 * the original hyper-tcp repository's Python test server (../shared/vendor) as a device speaking
 * HyperTCP as a server. Restarts, an unreachable address, an over-long line.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import path from 'node:path'
import { expect } from 'chai'
import { type DialOutView, selfConnected } from '../../src/adapters/dial-out.js'
import type { Gateway } from '../../src/index.js'
import { ORIGINAL } from '../firmware/support/vendor.js'
import { useCleanups } from '../helpers/cleanups.js'
import { DEVICES, startGateway, suiteGateways } from '../helpers/gateway.js'
import { Inbox, waitUntil } from '../helpers/inbox.js'
import { freePort, refusedPort } from '../helpers/net.js'
import { OriginalDevice } from '../helpers/original-device.js'

type Presence = { online: boolean; reason?: string; dialect?: string; dialOut?: boolean }

/** A device that listens: records what it receives, sends what the test says, can restart. */
class ListeningDevice {
  readonly received = new Inbox<string>('bytes the device received')
  readonly connections = new Inbox<Socket>('connections to the device')
  private server: Server | undefined
  private sockets = new Set<Socket>()
  port = 0

  constructor(private readonly greeting?: string) {}

  async listen(port = 0): Promise<this> {
    const server = createServer((socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('error', () => {})
      socket.on('data', (d) => this.received.push(d.toString('latin1')))
      if (this.greeting !== undefined) socket.write(this.greeting)
      this.connections.push(socket)
    })
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    this.server = server
    this.port = (server.address() as AddressInfo).port
    return this
  }

  /** Writes to every open connection. */
  send(data: string | Buffer): void {
    for (const s of this.sockets) s.write(data)
  }

  /** Gone: its connections reset and its port closed (until {@link listen} again). */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
    this.server = undefined
  }
}

/** Skips the suite, with the reason printed, without python3 — which, where CI requires tools, fails instead. */
function requirePython(ctx: Mocha.Context): void {
  if (spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0) return
  if (process.env.HTGW_REQUIRE_TOOLS) throw new Error('required: python3 is not installed')
  console.log('    skipped: python3 is not installed')
  ctx.skip()
}

describe('dial-out devices: the gateway dials devices that listen', function () {
  this.timeout(20000)
  const cleanups = useCleanups()
  const { gateway, watch } = suiteGateways(cleanups, { adminPort: 0 })

  async function device(greeting?: string): Promise<ListeningDevice> {
    const d = await new ListeningDevice(greeting).listen()
    cleanups.push(() => d.stop())
    return d
  }

  async function dialed(gw: Gateway): Promise<DialOutView[]> {
    const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/dial-out`)
    return ((await res.json()) as { devices: DialOutView[] }).devices
  }

  /** The first dialed device as the admin API lists it, once `done` holds of it (asked again meanwhile). */
  async function dialedUntil(
    gw: Gateway,
    done: (v: DialOutView) => boolean,
    what: string,
    timeoutMs = 5000,
  ): Promise<DialOutView> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const [view] = await dialed(gw)
      if (view !== undefined && done(view)) return view
      if (Date.now() > deadline)
        throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(view)})`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  const lines = (id: string, port: number) => ({ id, host: '127.0.0.1', port, framing: 'lines' as const })

  it('lines: publishes each line (JSON as JSON, other text as a string) and writes its messages as lines', async () => {
    const dev = await device()
    const gw = await gateway({ dialOut: [lines('tel-1', dev.port)] })
    const w = await watch(gw, 'hypertcp/tel-1/up', 'hypertcp/tel-1/status')
    expect(await w.json<Presence>('hypertcp/tel-1/status', (p) => p.online)).to.deep.include({
      dialect: 'lines',
      dialOut: true,
    })
    dev.send('Temperature: 21.5\r\n{"t":21.5,"unit":"C"}\n\n42\nnot json {\n')
    expect(await w.json('hypertcp/tel-1/up')).to.equal('Temperature: 21.5')
    expect(await w.json('hypertcp/tel-1/up')).to.deep.equal({ t: 21.5, unit: 'C' })
    expect(await w.json('hypertcp/tel-1/up')).to.equal(42)
    expect(await w.json('hypertcp/tel-1/up')).to.equal('not json {')
    // A JSON string's text, any other JSON as its text, each with a newline.
    await w.publish('hypertcp/tel-1/dn', '"LED ON"')
    expect(await dev.received.take(() => true, 5000, 'the line')).to.equal('LED ON\n')
    await w.publish('hypertcp/tel-1/dn', '{"from":"app-1","payload":{"relay":1}}')
    expect(await dev.received.take(() => true, 5000, 'the line')).to.equal('{"relay":1}\n')
    const [view] = await dialed(gw)
    expect(view).to.deep.include({
      id: 'tel-1',
      framing: 'lines',
      state: 'connected',
      online: true,
      nextTry: null,
    })
    const devices = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/api/v1/devices`)).json()) as {
      devices: { id: string; dialect: string }[]
    }
    expect(devices.devices.find((d) => d.id === 'tel-1')).to.deep.include({ dialect: 'lines' })
  })

  it('lines: an echo device, as in the seed, talks to a HyperTCP device through the broker', async () => {
    const dev = await device()
    const gw = await gateway({ dialOut: [lines('echo-1', dev.port)] })
    const w = await watch(gw, 'hypertcp/echo-1/up')
    await waitUntil(() => gw.stats().online === 1, 'the dialed device is online')
    const socket = await dev.connections.take(() => true, 5000, 'the connection')
    socket.on('data', (d) => socket.write(`echo: ${d}`)) // the seed example: prints and echoes
    const hyper = await OriginalDevice.connect(gw.port, 'tok-1', { pingIntervalMs: 0 })
    cleanups.push(() => hyper.close())
    hyper.sendMessage('echo-1', 'hello')
    expect(await w.json('hypertcp/echo-1/up')).to.equal('echo: hello')
  })

  it('dials again when the device restarts, with presence offline then online', async () => {
    const dev = await device()
    const gw = await gateway({ dialOut: [lines('tel-1', dev.port)] })
    const w = await watch(gw, 'hypertcp/tel-1/status')
    await w.json<Presence>('hypertcp/tel-1/status', (p) => p.online)
    const port = dev.port
    await dev.stop()
    expect(await w.json<Presence>('hypertcp/tel-1/status', (p) => !p.online)).to.deep.include({
      reason: 'client_closed',
    })
    const [away] = await dialed(gw)
    expect(away!.state).to.be.oneOf(['backoff', 'connecting'])
    await dev.listen(port)
    await w.json<Presence>('hypertcp/tel-1/status', (p) => p.online, 10000)
    const [back] = await dialed(gw)
    // Counted again from the first step since it was logged in: this connection was attempt 1.
    expect(back).to.deep.include({ state: 'connected', online: true, attempts: 1 })
    expect(gw.stats().loginResults.ok).to.equal(2)
  })

  it('keeps trying an unreachable address, backing off, and lists it as away', async () => {
    const port = await refusedPort()
    const gw = await gateway({ dialOut: [{ id: 'gone-1', host: '127.0.0.1', port, framing: 'raw' }] })
    const view = await dialedUntil(
      gw,
      (v) => v.attempts >= 2 && v.state === 'backoff',
      'two attempts, then waiting',
      10000,
    )
    expect(view).to.deep.include({ lastError: 'ECONNREFUSED', online: false })
    expect(Date.parse(view.nextTry!)).to.be.greaterThan(Date.now() - 100)
    expect(gw.stats().online).to.equal(0)
  })

  it('does not take a connection to itself for a device (a free local port dialed as its own source)', async () => {
    // What the kernel does now and then when the dialed port is a free one of its source ports:
    // made here at once by dialing from that very port.
    const port = await freePort()
    const self = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: port })
    await new Promise((resolve, reject) => self.once('connect', resolve).once('error', reject))
    const other = await new Promise<Socket>((resolve, reject) => {
      const server = createServer((s) => {
        s.destroy()
        server.close()
      }).listen(0, '127.0.0.1', () => {
        const c = connect((server.address() as AddressInfo).port, '127.0.0.1')
        c.once('connect', () => resolve(c)).once('error', reject)
      })
    })
    try {
      expect(selfConnected(self)).to.equal(true)
      expect(selfConnected(other)).to.equal(false)
    } finally {
      self.destroy()
      other.destroy()
    }
  })

  it('gives up an attempt after connectTimeout (a device that never accepts), and tries again', async function () {
    requirePython(this)
    // A listener that never accepts, its one-connection queue taken: the next SYN goes unanswered.
    const code =
      'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1])\ntime.sleep(120)'
    const child = spawn('python3', ['-u', '-c', code], { stdio: ['ignore', 'pipe', 'ignore'] })
    cleanups.push(() => child.kill())
    const port = Number(
      await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d)))),
    )
    const filler = connect(port, '127.0.0.1')
    cleanups.push(() => filler.destroy())
    await new Promise((resolve) => filler.once('connect', resolve))
    const gw = await gateway({
      dialOut: [{ id: 'stuck-1', host: '127.0.0.1', port, framing: 'lines', connectTimeout: 0.3 }],
    })
    const view = await dialedUntil(
      gw,
      (v) => v.attempts >= 2,
      'a second attempt after the first timed out',
      10000,
    )
    expect(view.lastError).to.equal('no connection within 0.3 s')
    expect(view.online).to.equal(false)
  })

  it('cuts a line longer than maxFrameSize, counts it, and keeps the connection', async () => {
    const dev = await device()
    const gw = await gateway({ maxFrameSize: 64, dialOut: [lines('tel-1', dev.port)] })
    const w = await watch(gw, 'hypertcp/tel-1/up')
    await waitUntil(() => gw.stats().online === 1, 'online')
    dev.send(`${'x'.repeat(100)}`)
    dev.send(`${'y'.repeat(100)}\nafter\n`)
    expect(await w.json('hypertcp/tel-1/up')).to.equal('x'.repeat(64))
    expect(await w.json('hypertcp/tel-1/up')).to.equal('after')
    expect(gw.stats().truncated).to.equal(1)
    expect((await dialed(gw))[0]).to.deep.include({ state: 'connected', attempts: 1 })
  })

  it('raw: publishes bytes verbatim in chunks of at most maxFrameSize, and writes messages as they are', async () => {
    const dev = await device()
    const gw = await gateway({
      maxFrameSize: 64,
      dialOut: [{ id: 'bin-1', host: '127.0.0.1', port: dev.port, framing: 'raw' }],
    })
    const w = await watch(gw, 'hypertcp/bin-1/up')
    await waitUntil(() => gw.stats().online === 1, 'online')
    const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff))
    dev.send(bytes)
    const got: Buffer[] = []
    let total = 0
    while (total < bytes.length) {
      const chunk = await w.bytes('hypertcp/bin-1/up')
      expect(chunk.length).to.be.at.most(64)
      got.push(chunk)
      total += chunk.length
    }
    expect(Buffer.concat(got).equals(bytes)).to.equal(true)
    await w.publish('hypertcp/bin-1/dn', '"AT+RST"')
    expect(await dev.received.take(() => true, 5000, 'the bytes')).to.equal('AT+RST')
  })

  describe('hypertcp: the original Python test server as the device', () => {
    const server = path.join(ORIGINAL, 'HyperTCPTestServer.py')

    before(function () {
      requirePython(this)
      if (existsSync(server)) return
      console.log(
        `    vendored-source tests skipped: ${server} is missing (../shared/vendor is not next to this checkout)`,
      )
      this.skip()
    })

    /** Runs the server, unchanged, on a free port; resolves once it listens. */
    async function pythonServer(port: number): Promise<Inbox<string>> {
      const output = new Inbox<string>('the Python server output')
      const code = [
        'import sys',
        `sys.path.insert(0, ${JSON.stringify(path.dirname(server))})`,
        'from HyperTCPTestServer import HyperTCPProtocolServer',
        `HyperTCPProtocolServer(host="127.0.0.1", port=${port}).start()`,
      ].join('\n')
      const child = spawn('python3', ['-u', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] })
      cleanups.push(() => child.kill())
      let partial = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        partial += d
        const all = partial.split('\n')
        partial = all.pop()!
        for (const line of all) output.push(line)
      })
      await output.take((l) => l.includes('listening on'), 10000, 'the server listening')
      return output
    }

    it('logs in with the token, publishes what the server sends, and sends it the down topic', async () => {
      // The server starts once the gateway dials its port and a subscriber listens: its welcome
      // message comes right after the login.
      const port = await freePort()
      const gw = await gateway({
        dialOut: [
          { id: 'py-1', host: '127.0.0.1', port, framing: 'hypertcp', token: 'your_auth_token_here' },
        ],
      })
      const w = await watch(gw, 'hypertcp/py-1/up')
      const output = await pythonServer(port)
      // Its welcome message (a JSON_MESSAGE that is not an envelope): published as it is.
      expect(await w.json<{ type: string }>('hypertcp/py-1/up', undefined, 10000)).to.deep.include({
        type: 'welcome',
        message: 'Connected to HyperTCP server',
      })
      await w.publish('hypertcp/py-1/dn', '{"command":"set","value":7}')
      const line = await output.take((l) => l.startsWith('Server received message from'), 5000, 'the message')
      expect(line).to.include("'targetId': 'server'").and.include("'payload': {'command': 'set', 'value': 7}")
      await waitUntil(() => gw.stats().deviceAcks >= 1, 'the server acknowledged it')
      expect((await dialed(gw))[0]).to.deep.include({ framing: 'hypertcp', state: 'connected', online: true })
    })

    it('is refused a wrong token: counted, and tried again later', async () => {
      const port = await freePort()
      await pythonServer(port)
      const gw = await gateway({
        dialOut: [{ id: 'py-1', host: '127.0.0.1', port, framing: 'hypertcp', token: 'wrong' }],
      })
      await waitUntil(
        () => gw.stats().loginResults.invalid_token === 2,
        'refused twice: it tried again',
        10000,
      )
      const view = await dialedUntil(gw, (v) => v.lastError === 'invalid_token', 'listed with its error')
      expect(view.online).to.equal(false)
    })
  })

  it('is the registry for these ids: a device id may not be dialed and in devices', async () => {
    let error: Error | undefined
    try {
      await startGateway({ devices: DEVICES, dialOut: [lines('dev-1', 9)] })
    } catch (err) {
      error = err as Error
    }
    expect(error?.message).to.match(/dialOut\[0\]\.id.*registry/)
  })
})
