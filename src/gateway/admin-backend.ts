import type { MetricsSource } from '../adapters/admin/metrics.js'
import { type AdminBackend, type DeviceView, selectDevices } from '../adapters/admin/server.js'
import type { Bridge } from '../bridge/bridge.js'
import { redactUrl } from '../config/redact.js'
import type { Session } from '../session/session.js'
import type { GatewayStats } from '../stats.js'
import type { BrokerSide } from './broker-side.js'
import type { Gateway } from './gateway.js'
import type { DeviceListeners } from './listeners.js'

/** What the admin listener sees of a gateway, and may do to it. */
export function adminBackend(
  gateway: Gateway,
  broker: BrokerSide,
  bridge: Bridge,
  listeners: DeviceListeners,
): AdminBackend & MetricsSource {
  return {
    gatewayId: gateway.config.gatewayId,
    maxDownlinkSize: gateway.config.maxDownlinkSize,
    stats: () => gateway.stats(),
    brokerConnected: () => broker.ports.map((port) => port.connected),
    devices: (query) => selectDevices(bridge.online(), (s) => s.deviceId!, query).map(view),
    device: (id) => {
      const session = bridge.online(id)
      return session === undefined ? undefined : view(session)
    },
    dialOut: () => listeners.dialed(),
    kick: (id) => bridge.kick(id, 'the admin API'),
    send: (id, payloadJson) => bridge.sendFromServer(id, payloadJson),
    counters: () => ({
      ...countersJson(gateway.stats()),
      broker: { url: redactUrl(broker.url), connected: broker.ports.map((port) => port.connected) },
    }),
    missing() {
      const missing: string[] = []
      if (gateway.stopping) missing.push('the gateway is shutting down')
      if (!gateway.listening) missing.push('the device listeners are not bound')
      const down = broker.ports.flatMap((port, i) => (port.connected ? [] : [i]))
      if (down.length > 0) missing.push(`broker connection ${down.join(', ')} down`)
      return missing
    },
  }
}

function view(session: Session): DeviceView {
  const socket = session.socket as Session['socket'] & { encrypted?: boolean }
  const { up, down } = session.counters
  return {
    id: session.deviceId!,
    ip: socket.remoteAddress ?? '',
    port: socket.remotePort ?? 0,
    connectedAt: new Date(session.connectedAt).toISOString(),
    username: session.identity!.username,
    tls: socket.encrypted === true,
    dialect: session.dialect,
    ...(session.info !== undefined ? { info: session.info } : {}),
    up,
    down,
  }
}

/** The counters as JSON: frames by command type as an object of the types seen. */
function countersJson(stats: GatewayStats): Record<string, unknown> {
  const framesByType: Record<string, number> = {}
  stats.framesByType.forEach((n, type) => {
    if (n > 0) framesByType[type] = n
  })
  return { ...stats, framesByType, publishAck: stats.publishAck.toJSON() }
}
