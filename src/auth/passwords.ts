import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto'

/**
 * Broker user passwords as scrypt hashes (Node's own, RFC 7914): `scrypt$N$r$p$<salt>$<hash>`,
 * salt and hash in base64url. Verifying costs ~50 ms of a libuv worker thread, not the event loop,
 * which is what makes guessing slow; a plain password from the file is compared in constant time.
 */

const PREFIX = 'scrypt'
/** OWASP's scrypt minimum (N=2^17, r=8, p=1) costs 128 MiB per check; 2^15 keeps it at 32 MiB. */
const DEFAULT = { N: 32_768, r: 8, p: 1 }
const KEY_LENGTH = 32

function derive(password: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r }
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))),
  )
}

/** A new hash of `password`, for a `passwordHash` field. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, DEFAULT)
  return [
    PREFIX,
    DEFAULT.N,
    DEFAULT.r,
    DEFAULT.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$')
}

/** The parameters of a well-formed hash, or why it is not one (for the configuration's checks). */
export function parseHash(
  hash: string,
): { N: number; r: number; p: number; salt: Buffer; key: Buffer } | { error: string } {
  const parts = hash.split('$')
  if (parts.length !== 6 || parts[0] !== PREFIX) return { error: 'expected scrypt$N$r$p$salt$hash' }
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  if (!Number.isInteger(Math.log2(N)) || N < 2 || N > 1_048_576)
    return { error: 'N must be a power of 2 up to 2^20' }
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16)
    return { error: 'r must be 1–32 and p 1–16' }
  const salt = Buffer.from(parts[4]!, 'base64url')
  const key = Buffer.from(parts[5]!, 'base64url')
  if (salt.length < 8 || key.length < 16) return { error: 'salt or hash too short' }
  return { N, r, p, salt, key }
}

/** Whether `given` is the password of `hash` (a hash the configuration checked). */
export async function verifyPassword(given: Buffer, hash: string): Promise<boolean> {
  const parsed = parseHash(hash)
  if ('error' in parsed) return false
  const key = await derive(given.toString('utf8'), parsed.salt, parsed)
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key)
}

/** Constant-time comparison of a given password with a plain one. */
export function samePassword(given: Buffer, expected: string): boolean {
  const want = Buffer.from(expected)
  return given.length === want.length && timingSafeEqual(given, want)
}
