import { expect } from 'chai'
import type { MqttClient } from 'mqtt'
import { Cmd } from '../../src/protocol/constants.js'
import { waitUntil } from './inbox.js'
import type { RawClient } from './raw-client.js'

/** The peer topics the suites set (the shipped Mosquitto acl_file and RabbitMQ script expect them). */
export const PEER_TOPICS = { peer: 'hypertcp/%c/peer', peerBroadcast: 'hypertcp/$peers/broadcast' }

/** The next message frame of `type` a device got within `timeoutMs`, parsed. */
export async function nextMessage(
  d: RawClient,
  type: number = Cmd.JSON_MESSAGE,
  timeoutMs = 5000,
): Promise<unknown> {
  return JSON.parse((await d.frames.take((f) => f.type === type, timeoutMs)).text)
}

/**
 * With `topics.peer` and `topics.peerBroadcast` on a broker whose permissions let only gateways
 * write them: dev-1 (on one gateway) sends dev-3 (on another) a message, dev-3 broadcasts; each
 * arrives with its true sender, and `app` (allowed to read the peer broadcast) sees the broadcast.
 */
export async function expectPeerTraffic(
  dev1: RawClient,
  dev3: RawClient,
  app: MqttClient,
  timeoutMs = 5000,
): Promise<void> {
  const seen: string[] = []
  app.on('message', (topic) => seen.push(topic))
  await app.subscribeAsync('hypertcp/$peers/broadcast', { qos: 1 })
  dev1.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'dev-3', payload: { hi: 1 } })
  expect(await dev1.response(2)).to.equal(0)
  expect(await nextMessage(dev3, Cmd.JSON_MESSAGE, timeoutMs)).to.deep.equal({
    from: 'dev-1',
    payload: { hi: 1 },
  })
  dev3.sendFrame(Cmd.BROADCAST, 3, { targetId: 'broadcast', payload: { all: true } })
  expect(await dev3.response(3)).to.equal(0)
  expect(await nextMessage(dev1, Cmd.BROADCAST, timeoutMs)).to.deep.equal({
    from: 'dev-3',
    payload: { all: true },
  })
  await waitUntil(() => seen.includes('hypertcp/$peers/broadcast'), "the app's copy of the broadcast")
}

/**
 * dev-2 logs in on one gateway (`first`), then on the other (`second`): the first connection is
 * closed, the second served, and both logins announce themselves on the peer topic only (`admin`
 * may read both the peer and the control topic).
 */
export async function expectPeerTakeover(
  admin: MqttClient,
  first: () => Promise<RawClient>,
  second: () => Promise<RawClient>,
): Promise<void> {
  const notices: string[] = []
  admin.on('message', (topic, body) => {
    if (body.toString().startsWith('{"action":"takeover"')) notices.push(topic)
  })
  await admin.subscribeAsync(['hypertcp/dev-2/peer', 'hypertcp/dev-2/ctl'], { qos: 1 })
  const one = await first()
  const two = await second()
  await one.waitClosed()
  two.sendFrame(Cmd.PING, 4)
  expect(await two.response(4)).to.equal(0)
  // Each login announces itself (the first one's finds nobody); none on the control topic.
  await waitUntil(() => notices.length === 2, 'both logins announced')
  expect(notices).to.deep.equal(['hypertcp/dev-2/peer', 'hypertcp/dev-2/peer'])
}
