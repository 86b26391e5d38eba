import { type GatewayConfig, SETTINGS, type Setting } from './settings.js'

const HIDDEN = '***'

/**
 * The configuration as it may be shown (`--print-config`, logs): every secret setting, every
 * device token and the user:password part of every URL replaced by `***`.
 */
export function redactConfig(config: GatewayConfig): Record<string, unknown> {
  const shown: Record<string, unknown> = { ...config }
  for (const [key, spec] of Object.entries(SETTINGS) as [keyof GatewayConfig, Setting<unknown>][]) {
    if (spec.secret && config[key] !== null) shown[key] = HIDDEN
  }
  if (config.mqttUrl !== null) shown.mqttUrl = config.mqttUrl.map(redactUrl)
  if (config.authUrl !== null) shown.authUrl = redactUrl(config.authUrl)
  shown.devices = config.devices.map((d) => ({ ...d, token: HIDDEN }))
  shown.brokerUsers = config.brokerUsers.map((u) => ({
    ...u,
    ...(u.password === undefined ? {} : { password: HIDDEN }),
    ...(u.passwordHash === undefined ? {} : { passwordHash: HIDDEN }),
  }))
  return shown
}

/** The URL without its user info (credentials go in MQTT's CONNECT, not in a WebSocket request). */
export function withoutCredentials(url: string | URL): string {
  const u = new URL(url)
  u.username = ''
  u.password = ''
  return u.toString()
}

/** A URL with its credentials replaced by `***` (left as is when it has none, or is not a URL). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.username === '' && u.password === '') return url
    u.username = HIDDEN
    u.password = u.password === '' ? '' : HIDDEN
    return u.toString()
  } catch {
    return url
  }
}
