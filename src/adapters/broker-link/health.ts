import type { Logger } from '../../log.js'

/** A connection shorter than this, closed by the broker, counts towards "flapping". */
const SHORT_LIVED_MS = 5000
/** This many short-lived connections in a row: another client probably has our client id. */
const FLAPPING_COUNT = 3

/**
 * What the link says about its connection's health: an outage once (at error) and again only when
 * its cause changes, the rest at debug; the restoration at info; and, once, a broker that keeps
 * closing the connection right after accepting it.
 */
export class LinkHealth {
  /** The cause last logged at error, while an outage lasts. */
  private outage: string | undefined
  private shortLived = 0
  private flappingLogged = false

  constructor(
    private readonly logger: Logger,
    private readonly clientId: string,
  ) {}

  /** The connection (or an attempt) failed. `next` names the broker tried next, if not the same. */
  lost(url: string, reason: string, next: string | undefined): void {
    if (this.outage === reason) {
      this.logger.debug('broker still unreachable, retrying', { url, reason })
      return
    }
    const first = this.outage === undefined
    this.outage = reason
    this.logger.error(first ? 'broker connection lost, retrying' : 'broker still unreachable, retrying', {
      url,
      reason,
      ...(next === undefined ? {} : { next }),
    })
  }

  /** A CONNACK accepted the connection. */
  connected(url: string, protocol: '5' | '3.1.1'): void {
    if (this.outage !== undefined) this.logger.info('broker connection restored', { url, protocol })
    else this.logger.debug('connected to the broker', { url, protocol })
    this.outage = undefined
  }

  /**
   * The broker closed a connection that had lasted `livedMs`. A broker that closes connections
   * right after accepting them, again and again, is handing the session to another client with the
   * same client id (two gateways with one gatewayId), which it then closes in turn: the two would
   * flap for ever. Said once, plainly (at once when an MQTT 5 broker says "session taken over").
   */
  closedByBroker(url: string, livedMs: number, reason: string): void {
    if (livedMs >= SHORT_LIVED_MS) {
      this.shortLived = 0
      this.flappingLogged = false
      return
    }
    if (++this.shortLived < FLAPPING_COUNT && !reason.includes('session taken over')) return
    if (this.flappingLogged) return
    this.flappingLogged = true
    this.logger.error(
      `the broker keeps closing connection "${this.clientId}" right after accepting it: ` +
        'another client is probably using the same client id (two gateways with the same gatewayId ' +
        'or mqttClientId? give each instance its own), or the broker cannot restore what belongs to ' +
        'it (RabbitMQ: its subscription queue is on a node that is down; see the README)',
      { url, reason },
    )
  }
}
