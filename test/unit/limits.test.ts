import { expect } from 'chai'
import { CidrList, ipv4ToInt, parseCidr } from '../../src/limits/cidr.js'
import { IpGuard, type IpGuardOptions, normalizeIp } from '../../src/limits/ip-guard.js'
import { TokenBucket } from '../../src/limits/token-bucket.js'

const base: IpGuardOptions = {
  connectionRate: 0,
  connectionBurst: 1,
  failureLimit: 0,
  failureWindowMs: 60_000,
  banMs: 300_000,
  allow: [],
  deny: [],
  exempt: [],
  maxTracked: 1000,
}

describe('token bucket', () => {
  it('allows the burst, then the rate', () => {
    const b = new TokenBucket(10, 3, 0) // 10/s, burst 3
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).to.deep.equal([true, true, true, false])
    expect(b.take(50)).to.equal(false) // half a token
    expect(b.take(100)).to.equal(true) // one token after 100 ms
    expect(b.idle(100)).to.equal(false)
    expect(b.idle(400)).to.equal(true)
  })
})

describe('IP guard', () => {
  it('applies deny and allow lists, IPv4 and IPv6, mapped addresses as IPv4', () => {
    const g = new IpGuard({ ...base, allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.1.0.0/16'] })
    expect(g.admit('10.2.3.4', 0)).to.equal('ok')
    expect(g.admit('::ffff:10.2.3.4', 0)).to.equal('ok')
    expect(g.admit('10.1.2.3', 0)).to.equal('denied')
    expect(g.admit('192.168.1.1', 0)).to.equal('denied')
    expect(g.admit('2001:db8::1', 0)).to.equal('ok')
    expect(g.admit('2001:db9::1', 0)).to.equal('denied')
  })

  it('limits connections per IP, not across IPs, and not for exempt networks', () => {
    const g = new IpGuard({ ...base, connectionRate: 1, connectionBurst: 2, exempt: ['127.0.0.0/8'] })
    expect([g.admit('1.1.1.1', 0), g.admit('1.1.1.1', 0), g.admit('1.1.1.1', 0)]).to.deep.equal([
      'ok',
      'ok',
      'rate_limited',
    ])
    expect(g.admit('2.2.2.2', 0)).to.equal('ok')
    expect(g.admit('1.1.1.1', 1000)).to.equal('ok')
    for (let i = 0; i < 10; i++) expect(g.admit('127.0.0.1', 0)).to.equal('ok')
  })

  it('bans an IP after N login failures within the window, for the ban time', () => {
    const g = new IpGuard({ ...base, failureLimit: 3, failureWindowMs: 1000, banMs: 5000 })
    expect(g.loginFailed('1.1.1.1', 0)).to.equal(false)
    expect(g.loginFailed('1.1.1.1', 2000)).to.equal(false) // the first fell out of the window
    expect(g.loginFailed('1.1.1.1', 2100)).to.equal(false)
    expect(g.loginFailed('1.1.1.1', 2200)).to.equal(true)
    expect(g.isBanned('1.1.1.1', 2300)).to.equal(true)
    expect(g.admit('1.1.1.1', 2300)).to.equal('banned')
    expect(g.isBanned('1.1.1.2', 2300)).to.equal(false)
    expect(g.isBanned('1.1.1.1', 7300)).to.equal(false)
  })

  it('keeps its memory bounded: at most maxTracked addresses, and sweeps idle ones', () => {
    const g = new IpGuard({ ...base, connectionRate: 1, connectionBurst: 1, maxTracked: 100 })
    for (let i = 0; i < 1000; i++) g.admit(`10.0.${i >> 8}.${i & 255}`, 0)
    expect(g.tracked).to.equal(100)
    g.sweep(10_000)
    expect(g.tracked).to.equal(0)
  })

  it('parses addresses and CIDRs, and refuses anything else', () => {
    expect(parseCidr('10.0.0.0/8')).to.deep.equal({ address: '10.0.0.0', prefix: 8, family: 'ipv4' })
    expect(parseCidr('::1')).to.deep.equal({ address: '::1', prefix: undefined, family: 'ipv6' })
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'x', '10.0.0.0/8/1', '::1/129', '10.0.0.0/-1']) {
      expect(parseCidr(bad), bad).to.equal(undefined)
    }
    expect(normalizeIp('::ffff:127.0.0.1')).to.equal('127.0.0.1')
    expect(normalizeIp('::1')).to.equal('::1')
  })

  it('reads dotted-quad IPv4 addresses exactly as isIP does, and nothing else', () => {
    expect(ipv4ToInt('0.0.0.0')).to.equal(0)
    expect(ipv4ToInt('255.255.255.255')).to.equal(0xffffffff)
    expect(ipv4ToInt('10.1.2.3')).to.equal(0x0a010203)
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '1.2.3.256',
      '01.2.3.4',
      '1..2.3',
      '1.2.3.',
      '::1',
      '1.2.3.4 ',
    ]) {
      expect(ipv4ToInt(bad), bad).to.equal(-1)
    }
  })

  it('matches addresses against a list of networks: prefixes /0 to /32, IPv6 apart', () => {
    const list = new CidrList(['10.0.0.0/8', '192.168.1.7', '172.16.0.0/12', '2001:db8::/32', '::1'])
    const inside = ['10.0.0.0', '10.255.255.255', '192.168.1.7', '172.31.255.255', '2001:db8::5', '::1']
    const outside = ['11.0.0.0', '9.255.255.255', '192.168.1.8', '172.32.0.0', '2001:db9::1', '::2']
    for (const ip of inside) expect(list.has(ip), ip).to.equal(true)
    for (const ip of outside) expect(list.has(ip), ip).to.equal(false)
    expect(new CidrList(['0.0.0.0/0']).has('203.0.113.9')).to.equal(true)
    expect(new CidrList(['0.0.0.0/0']).has('::1')).to.equal(false) // IPv4 entries match IPv4 only
    expect(new CidrList(['10.0.0.0/8']).has('not an address')).to.equal(false)
  })
})
