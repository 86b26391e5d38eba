/**
 * Per-device downlink limits (issue 19.4): a registry entry's maxDownlinkSize and
 * maxDownlinkMembers. A message over either is dropped whole, counted and logged, and never sent:
 * the device gets the next message, not a part of this one.
 */
import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { captureLogger } from '../helpers/capture-logger.js'
import { BROKER_ADMIN, DEVICES, startGateway } from '../helpers/gateway.js'
import { MqttWatcher } from '../helpers/mqtt.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

const members = (n: number) =>
  JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, k])))

describe('per-device downlink limits (maxDownlinkSize, maxDownlinkMembers)', () => {
  let gw: Gateway
  let w: MqttWatcher
  const log = captureLogger()
  const { track } = trackRawClients()

  before(async () => {
    gw = await startGateway({
      devices: [
        ...DEVICES,
        // The original header on ArduinoJson 6 takes 30 (README).
        { id: 'aj6-1', token: 'tok-aj6', maxDownlinkMembers: 30 },
        { id: 'small-1', token: 'tok-small', maxDownlinkSize: 64 },
      ],
      logger: log.logger,
    })
    w = await MqttWatcher.connect(gw.mqttUrl, [], BROKER_ADMIN)
  })
  after(async () => {
    await w?.end()
    await gw?.close()
  })

  async function device(token: string): Promise<RawClient> {
    const c = await track(RawClient.connect(gw.port))
    expect(await c.login(token)).to.equal(Status.SUCCESS)
    return c
  }

  /** The next JSON_MESSAGE's payload. */
  async function next(c: RawClient): Promise<unknown> {
    const f = await c.frames.take((x) => x.type === Cmd.JSON_MESSAGE)
    return (JSON.parse(f.text) as { payload: unknown }).payload
  }
  const droppedBy = (why: string) => gw.stats().droppedBy[why] ?? 0

  it('sends a message within the member limit, and drops one over it: counted, logged, never sent', async () => {
    const c = await device('tok-aj6')
    const before = droppedBy('too_many_members')
    await w.publish('hypertcp/aj6-1/dn', members(30))
    expect(await next(c)).to.deep.equal(JSON.parse(members(30)))
    await w.publish('hypertcp/aj6-1/dn', members(31))
    // Members count at every depth: 29 + an array of 2 is 31 as well.
    await w.publish('hypertcp/aj6-1/dn', JSON.stringify({ ...JSON.parse(members(28)), v: [1, 2] }))
    await w.publish('hypertcp/aj6-1/dn', '{"after":true}')
    expect(await next(c)).to.deep.equal({ after: true })
    expect(droppedBy('too_many_members')).to.equal(before + 2)
    expect(log.lines.some((l) => l.includes('message to device dropped') && l.includes('aj6-1'))).to.equal(
      true,
    )
  })

  it('applies the member limit to envelopes and broadcasts, and leaves devices without a limit alone', async () => {
    const limited = await device('tok-aj6')
    const other = await device('tok-1')
    await w.publish('hypertcp/aj6-1/dn', JSON.stringify({ from: 'app', payload: JSON.parse(members(31)) }))
    await w.publish('hypertcp/broadcast', JSON.stringify({ from: 'ops', payload: JSON.parse(members(40)) }))
    await w.publish('hypertcp/broadcast', '{"from":"ops","payload":{"small":1}}')
    const b = await limited.frames.take((x) => x.type === Cmd.BROADCAST)
    expect(JSON.parse(b.text)).to.deep.equal({ from: 'ops', payload: { small: 1 } })
    expect(limited.frames.history.filter((f) => f.type === Cmd.JSON_MESSAGE)).to.deep.equal([])
    const big = await other.frames.take((x) => x.type === Cmd.BROADCAST)
    expect(Object.keys((JSON.parse(big.text) as { payload: object }).payload)).to.have.length(40)
  })

  it("drops a message over the device's own size limit, though within the gateway's", async () => {
    const c = await device('tok-small')
    const before = droppedBy('too_large')
    // {"from":"server","payload":…} adds 28 bytes: 36 + 28 = 64 fits, 37 + 28 does not.
    const fits = JSON.stringify({ s: 'x'.repeat(36 - 8) })
    expect(fits.length).to.equal(36)
    await w.publish('hypertcp/small-1/dn', fits)
    expect(await next(c)).to.deep.equal(JSON.parse(fits))
    await w.publish('hypertcp/small-1/dn', JSON.stringify({ s: 'x'.repeat(37 - 8) }))
    await w.publish('hypertcp/small-1/dn', '{"after":1}')
    expect(await next(c)).to.deep.equal({ after: 1 })
    expect(droppedBy('too_large')).to.equal(before + 1)
    expect(log.lines.some((l) => l.includes('over the 64-byte downlink limit'))).to.equal(true)
  })
})
