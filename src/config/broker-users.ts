/**
 * The embedded broker's users (`brokerUsers`, file only, or a file of their own given by
 * `brokerUsersFile`): each a username, a password (an scrypt hash, or plain text with a warning)
 * and a role (src/auth/broker-acl.ts says what each role may do).
 */
import { BROKER_ROLES, type BrokerRole } from '../auth/broker-acl.js'
import { parseHash } from '../auth/passwords.js'
import { ConfigError } from '../errors.js'
import { readJsonFile } from './load.js'
import { bad, checkFields, isRecord } from './messages.js'

export interface BrokerUser {
  readonly username: string
  /** Plain text: allowed, with a warning at start-up. */
  readonly password?: string
  /** `scrypt$N$r$p$salt$hash` (`hypertcp-gateway --hash-password` makes one). */
  readonly passwordHash?: string
  readonly role: BrokerRole
}

/** The fields of a `brokerUsers` entry. */
export const BROKER_USER_FIELDS = {
  username: 'the MQTT username; required, unique',
  passwordHash:
    'its password as an scrypt hash `scrypt$N$r$p$salt$hash` (`hypertcp-gateway --hash-password` prints one); this or `password`',
  password: 'its password in plain text (a warning at start-up says to hash it)',
  role: `${BROKER_ROLES.join(', ')}: what it may read and publish (README, Security); default app`,
} as const

export function checkBrokerUsers(key: string, value: unknown): BrokerUser[] {
  if (!Array.isArray(value)) throw bad(key, 'an array of {"username", "passwordHash", "role"} entries', value)
  const names = new Map<string, number>()
  return value.map((entry: unknown, i): BrokerUser => {
    const at = `${key}[${i}]`
    if (!isRecord(entry))
      throw bad(at, 'an object {"username": "...", "passwordHash": "...", "role": "app"}', entry)
    checkFields(at, entry, BROKER_USER_FIELDS, 'broker user')
    const { username, password, passwordHash, role = 'app' } = entry
    if (typeof username !== 'string' || username.length === 0 || username.length > 256)
      throw bad(`${at}.username`, 'a non-empty string', username)
    if ((password === undefined) === (passwordHash === undefined))
      throw new ConfigError(at, 'give "passwordHash" or "password" (one of them)')
    if (password !== undefined && (typeof password !== 'string' || password.length === 0))
      throw bad(`${at}.password`, 'a non-empty string', password)
    if (passwordHash !== undefined) {
      const parsed = typeof passwordHash === 'string' ? parseHash(passwordHash) : { error: 'a string' }
      if ('error' in parsed) throw bad(`${at}.passwordHash`, parsed.error, passwordHash)
    }
    if (!BROKER_ROLES.includes(role as BrokerRole))
      throw bad(`${at}.role`, `one of ${BROKER_ROLES.join(', ')}`, role)
    const dup = names.get(username)
    if (dup !== undefined) throw new ConfigError(`${at}.username`, `"${username}" is already ${key}[${dup}]`)
    names.set(username, i)
    return {
      username,
      ...(password === undefined ? {} : { password: password as string }),
      ...(passwordHash === undefined ? {} : { passwordHash: passwordHash as string }),
      role: role as BrokerRole,
    }
  })
}

/** `brokerUsersFile`: a JSON list of users, or an object with a `brokerUsers` list. */
export function readBrokerUsersFile(path: string): BrokerUser[] {
  const source = `brokerUsersFile ${path}`
  const value = readJsonFile(path, source)
  return checkBrokerUsers(source, isRecord(value) ? value.brokerUsers : value)
}
