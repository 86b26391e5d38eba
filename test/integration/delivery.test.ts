/**
 * Delivery guarantees seen by a device (issue 19): answers in the order of its requests whatever
 * order the broker confirms in.
 */
import type { AedesOptions } from 'aedes'
import { expect } from 'chai'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { externalAedes } from '../helpers/aedes.js'
import { startGateway } from '../helpers/gateway.js'
import { waitUntil } from '../helpers/inbox.js'
import { RawClient, trackRawClients } from '../helpers/raw-client.js'

describe('answers keep the order of the requests on a slow broker [decision 22]', function () {
  this.timeout(20_000)
  const clients = trackRawClients()

  it('pings, refused frames, a JSON ping and uplinks, interleaved, are answered in order', async () => {
    // A real broker that confirms the device's publishes only when the test says so, last first.
    const held: Array<() => void> = []
    const authorizePublish: AedesOptions['authorizePublish'] = (_client, packet, callback) => {
      if (packet.topic === 'hypertcp/dev-1/up' || packet.topic === 'hypertcp/dev-2/dn')
        held.push(() => callback(null))
      else callback(null)
    }
    const broker = await externalAedes({ authorizePublish })
    const gw = await startGateway({ mqttUrl: broker.url, mqttConnections: 1, ackHoldMs: 0 })
    try {
      const device = await clients.track(RawClient.connect(gw.port))
      expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
      device.sendFrame(Cmd.JSON_MESSAGE, 1, { targetId: 'server', payload: { n: 1 } })
      device.sendFrame(Cmd.PING, 2)
      device.sendFrame(Cmd.JSON_MESSAGE, 3, 'not json')
      device.sendFrame(Cmd.JSON_MESSAGE, 4, { targetId: 'server', payload: { command: 'ping', seq: 4 } })
      device.sendFrame(Cmd.JSON_MESSAGE, 5, { targetId: 'dev-2', payload: { n: 5 } })
      device.sendFrame(0x7e, 6) // a command type the gateway does not take
      device.sendFrame(Cmd.JSON_MESSAGE, 7, { targetId: 'server', payload: { n: 7 } })
      device.sendFrame(Cmd.JSON_MESSAGE, 8, { targetId: 'bad/id', payload: {} })
      // The broker holds the three uplinks; release them newest first.
      await waitUntil(() => held.length === 3, 'the broker holds the three uplinks')
      for (const release of held.splice(0).reverse()) release()
      const got: Array<[number, number, number]> = []
      while (got.length < 9) {
        const f = await device.frames.next()
        got.push([f.type, f.msgId, f.length])
      }
      const pong = Buffer.byteLength(JSON.stringify({ from: 'server', payload: { command: 'pong', seq: 4 } }))
      expect(got).to.deep.equal([
        [Cmd.RESPONSE, 1, 0],
        [Cmd.RESPONSE, 2, 0],
        [Cmd.RESPONSE, 3, Status.ILLEGAL_COMMAND_BODY],
        [Cmd.RESPONSE, 4, 0],
        [Cmd.JSON_MESSAGE, 1, pong],
        [Cmd.RESPONSE, 5, 0],
        [Cmd.RESPONSE, 6, Status.ILLEGAL_COMMAND],
        [Cmd.RESPONSE, 7, 0],
        [Cmd.RESPONSE, 8, Status.ILLEGAL_COMMAND_BODY],
      ])
    } finally {
      await gw.close()
      await broker.close()
    }
  })
})
