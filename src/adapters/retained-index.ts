/**
 * The embedded broker's persistence: aedes-persistence's memory store (Aedes' own default), with
 * its retained messages also indexed by exact topic. Aedes asks the persistence for the retained
 * messages matching a new subscription's filters (`createRetainedStreamCombi`), and the memory
 * store answers by testing every retained message against them: a subscription costs a scan of
 * all retained messages, so workers' logins over loopback MQTT (each subscribes its device's
 * status topic, retained presence) slowed down as devices accumulated presence. Filters without
 * wildcards — every subscription the gateway makes — are now answered from the index; wildcard
 * filters still go to the store. Only the persistence interface Aedes documents is used: the two
 * methods are the store's own, wrapped on this instance.
 */
import { Readable } from 'node:stream'
import memoryModule, { type AedesPersistence } from 'aedes-persistence'

type Done = (error?: Error | null) => void

type AedesPacket = Parameters<AedesPersistence['storeRetained']>[0]
/** A retained PUBLISH as the persistence is given it. */
type Retained = AedesPacket & { readonly topic: string; readonly payload: Buffer }

// A CommonJS package: its `module.exports` (the factory) is the default import under Node's ESM,
// where its types declare an ES default export.
const memory = memoryModule as unknown as () => AedesPersistence

/** A fresh memory persistence with the exact-topic index of its retained messages. */
export function indexedMemoryPersistence(): AedesPersistence {
  const store = memory()
  const byTopic = new Map<string, Retained>()
  const storeRetained = store.storeRetained.bind(store)
  const combi = store.createRetainedStreamCombi.bind(store)
  // Aedes calls it without a callback and takes the store's promise.
  store.storeRetained = ((packet: AedesPacket, done?: Done) => {
    const p = packet as Retained
    if (p.payload.length === 0) byTopic.delete(p.topic)
    else byTopic.set(p.topic, { ...p })
    return (storeRetained as (packet: AedesPacket, done?: Done) => unknown)(packet, done)
  }) as AedesPersistence['storeRetained']
  store.createRetainedStreamCombi = (patterns: string[]) => {
    if (patterns.some((p) => p.includes('+') || p.includes('#'))) return combi(patterns)
    const found: Retained[] = []
    for (const topic of patterns) {
      const packet = byTopic.get(topic)
      if (packet !== undefined) found.push(packet)
    }
    return Readable.from(found)
  }
  return store
}
