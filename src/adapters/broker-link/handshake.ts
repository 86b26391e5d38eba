import mqttPacket, { type IConnackPacket } from 'mqtt-packet'
import type { OutboxLimits } from './outbox.js'
import { describeConnack, ReasonCode } from './reason-codes.js'
import type { ProtocolLevel } from './writer.js'

/** What goes in the gateway's CONNECT. */
export interface ConnectSettings {
  readonly clientId: string
  readonly username: string | null
  readonly password: string | null
  readonly keepalive: number
  /** 0: a clean start and no session kept. */
  readonly sessionExpiry: number
  readonly maxPacketSize: number
  readonly will?: { readonly topic: string; readonly payload: string }
}

/** CONNECT (MQTT 3.1.1 3.1 / MQTT 5 3.1), encoded by mqtt-packet. */
export function connectPacket(level: ProtocolLevel, o: ConnectSettings): Buffer {
  const clean = o.sessionExpiry === 0
  return mqttPacket.generate({
    cmd: 'connect',
    protocolVersion: level,
    protocolId: 'MQTT',
    clientId: o.clientId,
    clean,
    keepalive: o.keepalive,
    ...(o.username === null ? {} : { username: o.username }),
    ...(o.password === null ? {} : { password: Buffer.from(o.password) }),
    ...(o.will
      ? { will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: true } }
      : {}),
    ...(level === 5
      ? {
          properties: {
            // Announced so that the broker never sends more (PROTOCOL decision 24).
            maximumPacketSize: o.maxPacketSize,
            ...(clean ? {} : { sessionExpiryInterval: o.sessionExpiry }),
          },
        }
      : {}),
  })
}

/** What a CONNACK says: the connection's limits, or why it was refused. */
export type ConnackResult =
  | { readonly ok: true; readonly limits: OutboxLimits; readonly keepalive: number | undefined }
  | {
      readonly ok: false
      readonly reason: string
      /** The broker does not take this protocol version: another may do. */
      readonly unsupported: boolean
    }

/** Reads a CONNACK answering a CONNECT of protocol `level`. */
export function readConnack(level: ProtocolLevel, packet: IConnackPacket): ConnackResult {
  const code = (level === 5 ? packet.reasonCode : packet.returnCode) ?? 0
  if (code !== 0) {
    // A CONNACK of two bytes is a 3.1.1 one (MQTT 5 adds the properties' length), whatever we
    // sent: a 3.1.1 broker answers an MQTT 5 CONNECT with return code 1 (3.1.1 3.1.2.2).
    const from = packet.length === 2 ? 4 : level
    return {
      ok: false,
      reason: `the broker refused the connection: ${describeConnack(from, code)}`,
      unsupported: code === ReasonCode.UNSUPPORTED_PROTOCOL_VERSION || (from === 4 && code === 1),
    }
  }
  const p = packet.properties ?? {}
  return {
    ok: true,
    keepalive: p.serverKeepAlive,
    limits: {
      level,
      receiveMaximum: p.receiveMaximum ?? 65535,
      maximumPacketSize: p.maximumPacketSize ?? Number.MAX_SAFE_INTEGER,
      maximumQos: (p.maximumQoS ?? 2) as 0 | 1 | 2,
      retainAvailable: p.retainAvailable ?? true,
      sessionPresent: packet.sessionPresent,
    },
  }
}
