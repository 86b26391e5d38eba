import { connect as netConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { createWebSocketStream, WebSocket } from 'ws'
import { withoutCredentials } from '../../config/redact.js'
import { ConfigError } from '../../errors.js'

/** TLS material for `mqtts://` and `wss://` (PEM contents, already read). */
export interface TransportTls {
  readonly ca: Buffer | undefined
  readonly cert: Buffer | undefined
  readonly key: Buffer | undefined
  readonly rejectUnauthorized: boolean
}

/** A byte stream to a broker, and when it is open (TCP connected, TLS or WebSocket handshake done). */
export interface Transport {
  readonly stream: Duplex
  /** Called once the stream is open; bytes written before are sent then. */
  onOpen(handler: () => void): void
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'ssl:': 8883 }

/**
 * Opens a connection to the broker at `url`: `mqtt://` / `tcp://` over TCP, `mqtts://` / `ssl://`
 * over TLS, `ws://` / `wss://` over a WebSocket with the `mqtt` subprotocol (MQTT 5 6.0). Errors
 * arrive as the stream's `error` event, never thrown.
 */
export function openTransport(url: URL, tls: TransportTls): Transport {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port)
  const secure = {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    rejectUnauthorized: tls.rejectUnauthorized,
  }
  switch (url.protocol) {
    case 'mqtt:':
    case 'tcp:': {
      const socket = netConnect({ host, port: port!, noDelay: true })
      return { stream: socket, onOpen: (h) => socket.once('connect', h) }
    }
    case 'mqtts:':
    case 'ssl:': {
      const socket = tlsConnect({
        host,
        port: port!,
        // SNI takes a host name, not an address (RFC 6066 3).
        ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
        ...secure,
      })
      socket.setNoDelay(true)
      return { stream: socket, onOpen: (h) => socket.once('secureConnect', h) }
    }
    case 'ws:':
    case 'wss:': {
      const ws = new WebSocket(withoutCredentials(url), 'mqtt', { ...secure, perMessageDeflate: false })
      return { stream: createWebSocketStream(ws), onOpen: (h) => ws.once('open', h) }
    }
    default:
      throw new ConfigError('mqttUrl', `unsupported broker URL scheme ${url.protocol}`)
  }
}
