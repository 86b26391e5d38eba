/**
 * The embedded broker's retained messages, as any MQTT client sees them: a subscription without
 * wildcards is answered from the exact-topic index (src/adapters/retained-index.ts), a wildcard
 * one from Aedes' own store; both must say the same thing.
 */
import { expect } from 'chai'
import mqtt, { type MqttClient } from 'mqtt'
import type { Gateway } from '../../src/gateway/gateway.js'
import { startGateway } from '../helpers/gateway.js'

/** The retained messages a fresh subscription to `filters` replays: topic → payload text. */
async function replayed(url: string, filters: string[], expected: number): Promise<Map<string, string>> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  try {
    const got = new Map<string, string>()
    const all = new Promise<void>((resolve) => {
      client.on('message', (topic, payload, packet) => {
        if (packet.retain) got.set(topic, payload.toString())
        if (got.size === expected) resolve()
      })
    })
    await client.subscribeAsync(filters, { qos: 1 })
    if (expected > 0) await all
    // A marker published after the SUBACK arrives after every replayed message.
    await new Promise<void>((resolve) => {
      client.subscribe('lab/marker', () => client.publish('lab/marker', 'x', { qos: 1 }))
      client.on('message', (topic) => topic === 'lab/marker' && resolve())
    })
    return got
  } finally {
    await client.endAsync()
  }
}

describe('embedded broker: retained messages by exact topic and by wildcard', () => {
  let gw: Gateway
  let publisher: MqttClient
  before(async () => {
    gw = await startGateway()
    publisher = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 })
    for (const [topic, text] of [
      ['lab/a/1', 'one'],
      ['lab/a/2', 'two'],
      ['lab/b/1', 'other'],
      ['lab/a/3', 'gone'],
    ] as const)
      await publisher.publishAsync(topic, text, { qos: 1, retain: true })
    await publisher.publishAsync('lab/a/2', 'two again', { qos: 1, retain: true }) // replaced
    await publisher.publishAsync('lab/a/3', '', { qos: 1, retain: true }) // cleared
  })
  after(async () => {
    await publisher.endAsync()
    await gw.close()
  })

  it('replays the latest retained message of each exact topic, none for a cleared or unknown one', async () => {
    const got = await replayed(gw.mqttUrl, ['lab/a/1', 'lab/a/2', 'lab/a/3', 'lab/none'], 2)
    expect(Object.fromEntries(got)).to.deep.equal({ 'lab/a/1': 'one', 'lab/a/2': 'two again' })
  })

  it('replays the same for wildcard filters, from the broker store', async () => {
    const got = await replayed(gw.mqttUrl, ['lab/a/+'], 2)
    expect(Object.fromEntries(got)).to.deep.equal({ 'lab/a/1': 'one', 'lab/a/2': 'two again' })
    const all = await replayed(gw.mqttUrl, ['lab/#'], 3)
    expect(Object.fromEntries(all)).to.deep.equal({
      'lab/a/1': 'one',
      'lab/a/2': 'two again',
      'lab/b/1': 'other',
    })
  })
})
