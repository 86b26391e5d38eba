import type { AddressInfo, Socket } from 'node:net'
import { DeviceListener } from '../adapters/device-listener.js'
import type { GatewayConfig } from '../config/settings.js'
import { blynk } from '../dialects/blynk/index.js'
import { hypertcp } from '../dialects/hypertcp/index.js'
import type { Logger } from '../log.js'
import type { Dialect } from '../session/dialect.js'
import type { SessionOptions } from '../session/session.js'
import type { GatewayStats } from '../stats.js'
import type { Admission } from './admission.js'
import { tlsFiles } from './broker-side.js'

/** The device protocols a gateway listens for, with their ports and names in logs. */
function listenedDialects(
  config: GatewayConfig,
): { dialect: Dialect; name: string; port: number | 'off'; tlsPort: number | 'off' }[] {
  return [
    { dialect: hypertcp, name: 'HyperTCP', port: config.port, tlsPort: config.tlsPort },
    { dialect: blynk, name: 'Blynk', port: config.blynkPort, tlsPort: config.blynkTlsPort },
  ].filter((d) => d.port !== 'off' || d.tlsPort !== 'off')
}

/**
 * Every device listener of a gateway, one per dialect that has a port (PROTOCOL decision 34).
 * They share admission (IP guard, connection rate and limits) and the gateway's counters.
 */
export class DeviceListeners {
  private readonly all: { readonly dialect: Dialect; readonly listener: DeviceListener }[]

  constructor(
    config: GatewayConfig,
    admission: Admission,
    stats: GatewayStats,
    logger: Logger,
    connections: () => number,
    sessionOptions: Omit<SessionOptions, 'dialect'>,
    accept: (socket: Socket, options: SessionOptions) => void,
  ) {
    this.all = listenedDialects(config).map(({ dialect, name, port, tlsPort }) => {
      const options: SessionOptions = { ...sessionOptions, dialect }
      return {
        dialect,
        listener: new DeviceListener({
          name,
          host: config.host,
          port,
          tlsPort,
          tls: tlsFiles(config),
          handshakeTimeoutMs: config.loginTimeout * 1000,
          maxConnectionRate: config.maxConnectionRate,
          hardLimit: admission.hardLimit,
          guard: admission.guard,
          stats,
          logger,
          connections,
          onConnection: (socket) => accept(socket, options),
        }),
      }
    })
  }

  async listen(): Promise<void> {
    for (const { listener } of this.all) await listener.listen()
  }

  /** The bound addresses of a dialect's listeners, if it has any. */
  addresses(dialect: string): { plain?: AddressInfo; tls?: AddressInfo } | undefined {
    return this.all.find((l) => l.dialect.name === dialect)?.listener.addresses
  }

  get listening(): boolean {
    return this.all.every(({ listener }) => listener.listening)
  }

  reloadTls(config: GatewayConfig): void {
    for (const { listener } of this.all) listener.reloadTls(tlsFiles(config))
  }

  close(): Promise<void> {
    return Promise.all(this.all.map(({ listener }) => listener.close())).then(() => undefined)
  }
}
