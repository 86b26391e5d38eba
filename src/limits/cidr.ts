import { BlockList, isIP } from 'node:net'

export type IpFamily = 'ipv4' | 'ipv6'

/** Parses a CIDR or a plain address; undefined if it is neither. */
export function parseCidr(
  cidr: string,
): { address: string; prefix: number | undefined; family: IpFamily } | undefined {
  const [address, bits, extra] = cidr.trim().split('/')
  if (address === undefined || extra !== undefined) return undefined
  const version = isIP(address)
  if (version === 0) return undefined
  const family = version === 6 ? 'ipv6' : 'ipv4'
  if (bits === undefined) return { address, prefix: undefined, family }
  const prefix = Number(bits)
  const max = version === 6 ? 128 : 32
  if (!/^\d+$/.test(bits) || prefix > max) return undefined
  return { address, prefix, family }
}

/** `a.b.c.d` → its 32-bit value (unsigned); -1 for anything else. No allocation. */
export function ipv4ToInt(ip: string): number {
  let value = 0
  let part = -1
  let parts = 0
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i)
    if (c === 46 /* . */) {
      if (part < 0 || parts === 3) return -1
      value = value * 256 + part
      part = -1
      parts++
    } else if (c >= 48 && c <= 57) {
      // No leading zeros (as isIP): "01" is not a decimal octet.
      if (part === 0) return -1
      part = part < 0 ? c - 48 : part * 10 + (c - 48)
      if (part > 255) return -1
    } else return -1
  }
  if (part < 0 || parts !== 3) return -1
  return value * 256 + part
}

/**
 * A set of networks (`a.b.c.d`, `a.b.c.d/n`, `x::y`, `x::y/n`, validated by {@link parseCidr}).
 * IPv4 addresses — every connection's check, often from a new address — are matched here without
 * allocating; IPv6 ones by Node's BlockList (whose `check` allocates a SocketAddress per call).
 */
export class CidrList {
  /** Network and mask of each IPv4 entry, in pairs. */
  private readonly v4: Uint32Array
  private readonly v6: BlockList | undefined

  constructor(cidrs: readonly string[]) {
    const v4: number[] = []
    let v6: BlockList | undefined
    for (const cidr of cidrs) {
      const { address, prefix, family } = parseCidr(cidr)!
      if (family === 'ipv4') {
        const bits = prefix ?? 32
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
        v4.push((ipv4ToInt(address) & mask) >>> 0, mask)
      } else {
        v6 ??= new BlockList()
        if (prefix === undefined) v6.addAddress(address, 'ipv6')
        else v6.addSubnet(address, prefix, 'ipv6')
      }
    }
    this.v4 = Uint32Array.from(v4)
    this.v6 = v6
  }

  /** Whether `ip` (a plain IPv4 or IPv6 address, IPv4-mapped ones already unwrapped) is in the set. */
  has(ip: string): boolean {
    const n = ipv4ToInt(ip)
    if (n >= 0) {
      const v4 = this.v4
      for (let i = 0; i < v4.length; i += 2) if ((n & v4[i + 1]!) >>> 0 === v4[i]) return true
      return false
    }
    return this.v6 !== undefined && isIP(ip) === 6 && this.v6.check(ip, 'ipv6')
  }
}
