import { BROKER_USER_FIELDS } from './broker-users.js'
import { CUSTOM_COMMAND_FIELDS, DEVICE_FIELDS } from './collections.js'
import { DIAL_OUT_FIELDS } from './dial-out.js'
import { envName, kebab } from './resolve.js'
import { QOS, SETTINGS, type Setting, TOPICS } from './settings.js'

/**
 * docs/CONFIGURATION.md, rendered from the settings' declarations (settings.ts, collections.ts):
 * `npm run docs:config` writes it, and a test fails when the committed file differs.
 */
export function renderReference(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/settings.ts and src/config/collections.ts by `npm run docs:config`: edit those, not this file. -->',
    '',
    'Settings come from, in increasing priority: defaults, the JSON file given with `--config`,',
    '`HYPERTCP_*` environment variables, flags. The gateway checks everything at start-up and stops',
    'with exit code 2 and a message naming the source and the key (`config file gw.json: port:',
    'expected a port number from 0 to 65535, got "eighty"`); unknown keys are errors, with a',
    'suggestion. An empty variable or flag value sets a setting that may be absent to nothing.',
    'Settings marked *reload* are applied by SIGHUP without a restart; `devices` is too. Settings',
    'marked *secret* are never printed (`--print-config` shows `***`).',
    '',
    '## Settings',
    '',
    '| Setting (file) | Flag | Environment | Default | Meaning |',
    '| --- | --- | --- | --- | --- |',
  ]
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const marks = [s.secret ? '*secret*' : '', s.reload ? '*reload*' : ''].filter(Boolean).join(', ')
    out.push(
      `| \`${key}\` | \`--${kebab(key)}\` | \`${envName(key)}\` | ${shownDefault(s)} | ${s.doc}${marks ? ` (${marks})` : ''} |`,
    )
  }
  out.push(
    '',
    '## Topics',
    '',
    "Topic templates, `topics.<name>` in the file: `%c` = device id, `%u` = the device entry's",
    '`username` (else its id), `%g` = gateway id, `%%` = a literal `%`.',
    '',
    '| Name | Environment | Default | Placeholders | Meaning |',
    '| --- | --- | --- | --- | --- |',
  )
  for (const [key, t] of Object.entries(TOPICS)) {
    const placeholders = t.placeholders.length === 0 ? 'none' : t.placeholders.map((p) => `%${p}`).join(' ')
    out.push(
      `| \`${key}\` | \`${envName(key, 'topics')}\` | ${t.default === null ? 'off' : `\`${t.default}\``} | ${placeholders}${t.perDevice ? ' (%c required)' : ''} | ${t.doc} |`,
    )
  }
  out.push('', '## QoS', '', 'QoS per flow, `qos.<name>` in the file.', '')
  out.push('| Name | Environment | Default | Meaning |', '| --- | --- | --- | --- |')
  for (const [key, q] of Object.entries(QOS)) {
    out.push(`| \`${key}\` | \`${envName(key, 'qos')}\` | ${q.default} | ${q.doc} |`)
  }
  out.push(
    '',
    '## Devices',
    '',
    '`devices` (file only): the registry, a list of entries. A reload (SIGHUP) applies it; connected',
    'devices whose token was revoked are closed (`kicked`).',
    '',
    '| Field | Meaning |',
    '| --- | --- |',
  )
  for (const [key, doc] of Object.entries(DEVICE_FIELDS)) out.push(`| \`${key}\` | ${doc} |`)
  out.push(
    '',
    '## Custom commands',
    '',
    '`customCommands` (file only, [HT-5.6]): command types HyperTCP does not define, carried raw',
    'between devices and MQTT. A reload does not change them: they need a restart.',
    '',
    '| Field | Meaning |',
    '| --- | --- |',
  )
  for (const [key, doc] of Object.entries(CUSTOM_COMMAND_FIELDS)) out.push(`| \`${key}\` | ${doc} |`)
  out.push(
    '',
    '## Dial-out devices',
    '',
    '`dialOut` (file only): devices that listen on a port (TCP servers) and that the gateway dials,',
    'reconnecting with backoff (1 s first, doubling up to 60 s, with jitter) while they are away. They',
    'need a restart to change.',
    '',
    '| Field | Meaning |',
    '| --- | --- |',
  )
  for (const [key, doc] of Object.entries(DIAL_OUT_FIELDS)) out.push(`| \`${key}\` | ${doc} |`)
  out.push(
    '',
    '## Broker users',
    '',
    "`brokerUsers` (file only), and those of `brokerUsersFile`: the embedded broker's MQTT users.",
    'A client that gives no username is `anonymousRole` (from loopback only); `brokerUsername` and',
    '`brokerPassword` add one user with the admin role. They need a restart to change.',
    '',
    '| Field | Meaning |',
    '| --- | --- |',
  )
  for (const [key, doc] of Object.entries(BROKER_USER_FIELDS)) out.push(`| \`${key}\` | ${doc} |`)
  out.push(
    '',
    '## Auth hook',
    '',
    'With `authUrl`, a LOGIN whose token is not in `devices` is POSTed there as JSON',
    '`{"token": "…", "deviceId": <the claimed device_id, or null>, "ip": "…", "gatewayId": "…"}`:',
    '',
    '| The hook answers | The device gets |',
    '| --- | --- |',
    '| 200 `{"allow": true, "deviceId": "…", "username"?: "…", "allowTargets"?: […], "allowBroadcast"?: bool, "maxDownlinkSize"?: n, "maxDownlinkMembers"?: n}` | logged in with that identity (the fields mean what they mean in `devices`) |',
    '| 200 `{"allow": false}`, or 401, or 403 | INVALID_TOKEN (9), closed (`invalid_token`); counts towards the address\'s ban |',
    '| no answer within `authTimeout`, a connection error, a 5xx, anything else | SERVER_ERROR (19), closed (`auth_unavailable`): the device tries again |',
    '',
    'Positive answers are reused for `authCacheTtl` (per token and claimed id); identical requests',
    'in flight share one call; at most `authConcurrency` calls are in flight, the rest wait. Tokens',
    'are never logged. A registry reload (SIGHUP) does not close devices the hook let in.',
  )
  return `${out.join('\n')}\n`
}

function shownDefault(s: Setting<unknown>): string {
  if (s.defaultText !== undefined) return s.defaultText
  const value = typeof s.default === 'function' ? undefined : s.default
  if (value === null) return '—'
  if (Array.isArray(value)) return value.length === 0 ? 'none' : `\`${value.join(', ')}\``
  if (typeof value === 'string') return `\`${value}\``
  return String(value)
}
