import { expect } from 'chai'
import type { MqttClient } from 'mqtt'
import { Cmd } from '../../src/protocol/constants.js'
import { waitUntil } from './inbox.js'
import type { RawClient } from './raw-client.js'

/** The next message frame of `type` a device got, parsed. */
export async function nextMessage(d: RawClient, type: number = Cmd.JSON_MESSAGE): Promise<unknown> {
  return JSON.parse((await d.frames.take((f) => f.type === type)).text)
}

/**
 * With `topics.peer` and `topics.peerBroadcast` on a broker whose permissions let only gateways
 * write them: dev-1 (on one gateway) sends dev-3 (on another) a message, dev-3 broadcasts; each
 * arrives with its true sender, and `app` (allowed to read the peer broadcast) sees the broadcast.
 */
export async function expectPeerTraffic(dev1: RawClient, dev3: RawClient, app: MqttClient): Promise<void> {
  const seen: string[] = []
  app.on('message', (topic) => seen.push(topic))
  await app.subscribeAsync('hypertcp/$peers/broadcast', { qos: 1 })
  dev1.sendFrame(Cmd.JSON_MESSAGE, 2, { targetId: 'dev-3', payload: { hi: 1 } })
  expect(await dev1.response(2)).to.equal(0)
  expect(await nextMessage(dev3)).to.deep.equal({ from: 'dev-1', payload: { hi: 1 } })
  dev3.sendFrame(Cmd.BROADCAST, 3, { targetId: 'broadcast', payload: { all: true } })
  expect(await dev3.response(3)).to.equal(0)
  expect(await nextMessage(dev1, Cmd.BROADCAST)).to.deep.equal({ from: 'dev-3', payload: { all: true } })
  await waitUntil(() => seen.includes('hypertcp/$peers/broadcast'), "the app's copy of the broadcast")
}
