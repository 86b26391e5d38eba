import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

/** Limits: each one trips with a clear answer (status, REDIRECT or close reason) and a count. */
describe('limits', () => {
  const clients = trackRawClients()
  const gateways: Gateway[] = []
  const client = (port: number) => clients.track(RawClient.connect(port))
  async function gateway(options: Parameters<typeof startGateway>[0]): Promise<Gateway> {
    const gw = await startGateway(options)
    gateways.push(gw)
    return gw
  }
  afterEach(async () => {
    for (const gw of gateways.splice(0)) await gw.close()
  })

  describe('connections [HT-6.4]', () => {
    it('redirects a LOGIN beyond maxConnections to the configured peer', async () => {
      const gw = await gateway({ maxConnections: 2, overflowRedirect: 'gw2.example.net:9000' })
      const held = [await client(gw.port), await client(gw.port)]
      for (const [i, c] of held.entries()) expect(await c.login(`tok-${i + 1}`)).to.equal(Status.SUCCESS)
      const extra = await client(gw.port)
      extra.sendFrame(Cmd.LOGIN, 1, Buffer.from('tok-3'))
      const redirect = await extra.frames.take((f) => f.type === Cmd.REDIRECT)
      expect(JSON.parse(redirect.text)).to.deep.equal({ server: 'gw2.example.net', port: 9000 })
      await extra.waitClosed()
      expect(gw.stats().closes.redirected).to.equal(1)
      // Once a place is free, logins are served again.
      held[0]!.destroy()
      await waitUntil(() => gw.stats().online === 1, 'the place is freed')
      expect(await (await client(gw.port)).login('tok-3')).to.equal(Status.SUCCESS)
    })

    it('refuses a LOGIN beyond maxConnections with QUOTA_LIMIT when no peer is configured', async () => {
      const gw = await gateway({ maxConnections: 1 })
      expect(await (await client(gw.port)).login('tok-1')).to.equal(Status.SUCCESS)
      const extra = await client(gw.port)
      expect(await extra.login('tok-2')).to.equal(Status.QUOTA_LIMIT)
      await extra.waitClosed()
      expect(gw.stats().closes.rate_limited).to.equal(1)
    })

    it('closes connections past the hard limit at once, keeping file descriptors', async () => {
      const gw = await gateway({ maxConnections: 1 }) // hard limit: 1 + 64
      await Promise.all(Array.from({ length: 80 }, () => client(gw.port)))
      await waitUntil(
        () => (gw.stats().refused.connection_limit ?? 0) >= 15,
        'connections past 65 are refused',
      )
      expect(clients.open.filter((c) => !c.isClosed).length).to.be.at.most(65)
    })

    it('limits the connection rate of all addresses together', async () => {
      const gw = await gateway({ maxConnectionRate: 5 })
      await Promise.all(Array.from({ length: 20 }, () => client(gw.port)))
      await waitUntil(() => (gw.stats().refused.connection_rate ?? 0) >= 10, 'the excess is refused')
    })
  })

  describe('per device', () => {
    it('answers messages beyond its rate with QUOTA_LIMIT, never a silent drop or a false ack', async () => {
      const gw = await gateway({ messageRate: 2, messageBurst: 5 })
      const w = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/dev-1/up'])
      try {
        const c = await client(gw.port)
        expect(await c.login('tok-1')).to.equal(Status.SUCCESS)
        for (let id = 1; id <= 30; id++)
          c.sendFrame(Cmd.JSON_MESSAGE, id, { targetId: 'server', payload: { id } })
        const statuses: number[] = []
        for (let id = 1; id <= 30; id++) statuses.push(await c.response(id))
        expect(statuses.slice(0, 5)).to.deep.equal([0, 0, 0, 0, 0]) // the burst
        const acked = statuses.flatMap((s, i) => (s === 0 ? [i + 1] : []))
        const throttled = statuses.filter((s) => s === Status.QUOTA_LIMIT).length
        expect(acked.length + throttled).to.equal(30) // every message got one of the two answers
        expect(throttled).to.be.at.least(20)
        expect(gw.stats().throttled).to.equal(throttled)
        // Exactly the acknowledged messages were published, and they all arrive.
        expect(gw.stats().published).to.equal(acked.length)
        for (const id of acked) await w.json('hypertcp/dev-1/up', (p) => p.id === id)
      } finally {
        await w.end()
      }
    })

    it('drops downlinks to a device that stops reading, closes it after drainTimeout, and serves the others', async () => {
      const gw = await gateway({ maxWriteQueue: 64 * 1024, drainTimeout: 1, maxDownlinkSize: 1024 })
      const w = await MqttWatcher.connect(gw.mqttUrl)
      try {
        const stuck = await client(gw.port)
        const fine = await client(gw.port)
        expect(await stuck.login('tok-1')).to.equal(Status.SUCCESS)
        expect(await fine.login('tok-2')).to.equal(Status.SUCCESS)
        stuck.socket.pause() // reads nothing more: TCP buffers fill, then the gateway's queue
        const blob = JSON.stringify({ blob: 'x'.repeat(900) })
        const sends: Promise<unknown>[] = []
        for (let i = 0; i < 6000; i++) sends.push(w.publish('hypertcp/dev-1/dn', blob))
        await Promise.all(sends)
        await waitUntil(() => gw.stats().dropped > 0, 'downlinks to the stuck device are dropped', 10_000)
        await waitUntil(
          () => (gw.stats().closes.slow_consumer ?? 0) === 1,
          'the stuck device is closed',
          10_000,
        )
        await w.publish('hypertcp/dev-2/dn', '{"still":"served"}')
        const f = await fine.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
        expect(JSON.parse(f.text)).to.deep.equal({ from: 'server', payload: { still: 'served' } })
      } finally {
        await w.end()
      }
    })
  })
})
