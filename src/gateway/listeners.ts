import type { AddressInfo, Socket } from 'node:net'
import { DeviceListener } from '../adapters/device-listener.js'
import { DialOut, type DialOutView } from '../adapters/dial-out.js'
import { inShare, type Share } from '../bridge/lanes.js'
import type { DialOutEntry } from '../config/dial-out.js'
import type { GatewayConfig } from '../config/settings.js'
import { blynk } from '../dialects/blynk/index.js'
import { hypertcpClient } from '../dialects/hypertcp/client.js'
import { hypertcp } from '../dialects/hypertcp/index.js'
import { lines } from '../dialects/lines/index.js'
import { raw } from '../dialects/raw/index.js'
import { type Logger, LogThrottle } from '../log.js'
import type { Dialect } from '../session/dialect.js'
import type { Session, SessionOptions } from '../session/session.js'
import { WriteBatcher } from '../session/write-batcher.js'
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

/** The dialect of each `dialOut` framing. */
const DIALED: Record<DialOutEntry['framing'], Dialect> = { lines, raw, hypertcp: hypertcpClient }

/**
 * How devices reach a gateway: a listener per dialect that has a port (PROTOCOL decision 34),
 * sharing admission (IP guard, connection rate and limits) and the gateway's counters; and the
 * devices it dials (`dialOut`, decision 36).
 */
export class DeviceListeners {
  private readonly all: { readonly dialect: Dialect; readonly listener: DeviceListener }[]
  private readonly dialOut: DialOut

  constructor(
    config: GatewayConfig,
    admission: Admission,
    stats: GatewayStats,
    logger: Logger,
    connections: () => number,
    accept: (socket: Socket, options: SessionOptions) => Session,
    /** Worker `index` of `count`: it dials the entries whose id falls to it, so each is dialed once. */
    share?: Share,
  ) {
    const c = config
    // The session options of every dialect (each listener adds its own dialect).
    const sessionOptions: Omit<SessionOptions, 'dialect'> = {
      maxFrameSize: c.maxFrameSize,
      maxDownlinkSize: c.maxDownlinkSize,
      idCharset: c.idCharset,
      loginTimeoutMs: c.loginTimeout * 1000,
      keepaliveMs: c.keepalive * 1000,
      maxInflight: c.maxInflight,
      maxWriteQueue: c.maxWriteQueue,
      drainTimeoutMs: c.drainTimeout * 1000,
      messageRate: c.messageRate,
      messageBurst: c.messageBurst,
      gatekeeper: admission,
      throttle: new LogThrottle(logger),
      batcher: new WriteBatcher(c.ackHoldMs),
    }
    const dialedOptions = Object.fromEntries(
      Object.entries(DIALED).map(([framing, dialect]) => [framing, { ...sessionOptions, dialect }]),
    ) as Record<DialOutEntry['framing'], SessionOptions>
    const dialed = config.dialOut.filter((d) => inShare(share, d.id))
    this.dialOut = new DialOut(dialed, logger, (entry, socket) => {
      const session = accept(socket, dialedOptions[entry.framing])
      const username = entry.username ?? entry.id
      const identity = {
        deviceId: entry.id,
        username,
        tokenDigest: '',
        mayMessage: () => false,
        mayBroadcast: false,
        dialed: true,
      }
      session.open(entry.token === undefined ? { identity } : { identity, token: entry.token })
      return session
    })
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

  /** Binds the listeners, then starts dialing. */
  async listen(): Promise<void> {
    for (const { listener } of this.all) await listener.listen()
    this.dialOut.start()
  }

  /** The dialed devices and where each is. */
  dialed(): DialOutView[] {
    return this.dialOut.list()
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

  /** Stops dialing and accepting; resolves once every listener has closed. */
  close(): Promise<void> {
    this.dialOut.stop()
    return Promise.all(this.all.map(({ listener }) => listener.close())).then(() => undefined)
  }
}
