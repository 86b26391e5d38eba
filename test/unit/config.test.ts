import { expect } from 'chai'
import { DeviceRegistry } from '../../src/auth/registry.js'
import { defaults, envLayer, resolveConfig } from '../../src/config/resolve.js'
import { ConfigError } from '../../src/errors.js'
import { Status } from '../../src/protocol/constants.js'

const resolve = (values: unknown) => resolveConfig([{ source: 'test', values }])
/** A config with these `customCommands` entries ([HT-5.6]). */
const custom = (...entries: object[]) => ({ customCommands: entries })

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error('expected a ConfigError')
}

describe('config: defaults and layers', () => {
  it('has the documented defaults', () => {
    const c = resolve({})
    expect(c).to.include({
      port: 8080,
      brokerPort: 1883,
      brokerWsPort: 8083,
      mqttUrl: null,
      keepalive: 45,
      loginTimeout: 10,
      maxFrameSize: 4096,
      maxDownlinkSize: 1024,
      mqttConnections: 8,
    })
    expect(c.topics).to.deep.equal(defaults().topics)
    expect(c.qos).to.deep.equal({ up: 1, down: 1, direct: 1, broadcast: 1, presence: 1 })
  })

  it('lets later layers win: file < env < flags, merging topics and qos by key', () => {
    const c = resolveConfig([
      { source: 'file', values: { port: 1, host: 'file', topics: { up: 'a/%c/up' }, qos: { up: 0 } } },
      { source: 'env', values: { port: 2, qos: { direct: 0 } } },
      { source: 'flags', values: { port: 3 } },
    ])
    expect(c).to.include({ port: 3, host: 'file' })
    expect(c.topics.up).to.equal('a/%c/up')
    expect(c.topics.down).to.equal('hypertcp/%c/dn')
    expect(c.qos).to.include({ up: 0, direct: 0, broadcast: 1 })
  })

  it('reads HYPERTCP_* variables by setting kind and reports unknown ones', () => {
    const { layer, unknown } = envLayer({
      HYPERTCP_PORT: '9000',
      HYPERTCP_MQTT_URL: 'mqtt://b:1883',
      HYPERTCP_MQTT_REJECT_UNAUTHORIZED: 'false',
      HYPERTCP_BROKER_WS_PORT: 'off',
      HYPERTCP_TOPICS_UP: 'x/%c',
      HYPERTCP_QOS_UP: '0',
      HYPERTCP_PROT: '1',
      OTHER: 'x',
    })
    const c = resolveConfig([layer])
    expect(c.mqttUrl).to.deep.equal(['mqtt://b:1883'])
    expect(c).to.include({
      port: 9000,
      mqttRejectUnauthorized: false,
      brokerWsPort: 'off',
    })
    expect(c.topics.up).to.equal('x/%c')
    expect(c.qos.up).to.equal(0)
    expect(unknown).to.deep.equal(['HYPERTCP_PROT'])
  })
})

describe('config: errors name the key and what was expected', () => {
  const cases: [string, unknown, string][] = [
    ['unknown key', { prot: 1 }, 'test: prot'],
    ['bad port', { port: 70000 }, 'test: port'],
    ['port as text', { port: '80' }, 'test: port'],
    ['bad enum', { logLevel: 'loud' }, 'test: logLevel'],
    ['bad url', { mqttUrl: 'http://x' }, 'test: mqttUrl'],
    ['non-integer', { maxFrameSize: 1.5 }, 'test: maxFrameSize'],
    ['frame size over 65535', { maxFrameSize: 70000 }, 'test: maxFrameSize'],
    ['zero keepalive', { keepalive: 0 }, 'test: keepalive'],
    ['no broker connection', { mqttConnections: 0 }, 'test: mqttConnections'],
    ['65 broker connections', { mqttConnections: 65 }, 'test: mqttConnections'],
    ['unknown topic', { topics: { upp: 'x' } }, 'test: topics.upp'],
    ['bad qos', { qos: { up: 3 } }, 'test: qos.up'],
    ['template wildcard', { topics: { up: 'a/+/%c' } }, 'topics.up'],
    ['down without %c', { topics: { down: 'all/dn' } }, 'topics.down'],
    ['peer without peerBroadcast', { topics: { peer: 'p/%c' } }, 'topics.peerBroadcast'],
    ['peer without %c', { topics: { peer: 'p/all', peerBroadcast: 'p/b' } }, 'topics.peer'],
    ['peer on the down topic', { topics: { peer: 'hypertcp/%c/dn', peerBroadcast: 'p/b' } }, 'topics.peer'],
    ['devices not array', { devices: {} }, 'test: devices'],
    ['device without token', { devices: [{ id: 'a' }] }, 'test: devices[0].token'],
    ['device id with slash', { devices: [{ id: 'a/b', token: 't' }] }, 'test: devices[0].id'],
    ['reserved id', { devices: [{ id: 'server', token: 't' }] }, 'test: devices[0].id'],
    [
      'duplicate id',
      {
        devices: [
          { id: 'a', token: 't' },
          { id: 'a', token: 'u' },
        ],
      },
      'test: devices[1].id',
    ],
    [
      'duplicate token',
      {
        devices: [
          { id: 'a', token: 't' },
          { id: 'b', token: 't' },
        ],
      },
      'test: devices[1].token',
    ],
    ['unknown device key', { devices: [{ id: 'a', token: 't', tokn: 'x' }] }, 'test: devices[0].tokn'],
    [
      'bad allowedIds',
      { devices: [{ id: 'a', token: 't', allowedIds: ['ok', '#'] }] },
      'test: devices[0].allowedIds[1]',
    ],
    ['a $-prefixed id', { devices: [{ id: '$SYS', token: 't' }] }, 'test: devices[0].id'],
    [
      'bad allowTargets',
      { devices: [{ id: 'a', token: 't', allowTargets: ['x/y'] }] },
      'test: devices[0].allowTargets[0]',
    ],
    [
      'a device maxDownlinkSize under 16',
      { devices: [{ id: 'a', token: 't', maxDownlinkSize: 8 }] },
      'test: devices[0].maxDownlinkSize',
    ],
    [
      'a fractional maxDownlinkMembers',
      { devices: [{ id: 'a', token: 't', maxDownlinkMembers: 2.5 }] },
      'test: devices[0].maxDownlinkMembers',
    ],
    ['bad CIDR', { denyCidrs: ['10.0.0.0/8', '300.1.1.1'] }, 'test: denyCidrs[1]'],
    ['CIDRs not a list', { allowCidrs: 7 }, 'test: allowCidrs'],
    ['bad overflowRedirect', { overflowRedirect: 'gw2' }, 'test: overflowRedirect'],
    ['no listener left', { port: 'off' }, 'port'],
    ['dialOut not a list', { dialOut: { id: 'x' } }, 'test: dialOut'],
    [
      'a dial-out entry with an unknown key',
      { dialOut: [{ id: 'tel-1', host: 'esp.local', port: 23, framing: 'lines', hots: 'x' }] },
      'test: dialOut[0].hots',
    ],
    [
      'a dial-out port out of range',
      { dialOut: [{ id: 'a', host: 'h', port: 0, framing: 'raw' }] },
      'test: dialOut[0].port',
    ],
    [
      'a dial-out framing unknown',
      { dialOut: [{ id: 'a', host: 'h', port: 1, framing: 'telnet' }] },
      'test: dialOut[0].framing',
    ],
    [
      'a hypertcp dial-out without a token',
      { dialOut: [{ id: 'a', host: 'h', port: 1, framing: 'hypertcp' }] },
      'test: dialOut[0].token',
    ],
    [
      'a token for a lines dial-out',
      { dialOut: [{ id: 'tel-1', host: 'esp.local', port: 23, framing: 'lines', token: 't' }] },
      'test: dialOut[0].token',
    ],
    [
      'a dial-out connectTimeout out of range',
      { dialOut: [{ id: 'tel-1', host: 'esp.local', port: 23, framing: 'lines', connectTimeout: 0 }] },
      'test: dialOut[0].connectTimeout',
    ],
    [
      'a dial-out id twice',
      {
        dialOut: [
          { id: 'a', host: 'h', port: 1, framing: 'raw' },
          { id: 'a', host: 'h', port: 2, framing: 'raw' },
        ],
      },
      'test: dialOut[1].id',
    ],
    [
      'a dial-out id reserved',
      { dialOut: [{ id: 'server', host: 'h', port: 1, framing: 'raw' }] },
      'test: dialOut[0].id',
    ],
    ['TLS without a certificate', { tlsPort: 8443, tlsKey: 'k.pem' }, 'tlsCert'],
    [
      'client auth without a CA',
      { tlsPort: 8443, tlsCert: 'c', tlsKey: 'k', tlsClientAuth: 'require' },
      'tlsCa',
    ],
    ['a broker user without a password', { brokerUsername: 'u' }, 'brokerPassword'],
    ['the embedded broker beyond loopback with no users', { brokerHost: '0.0.0.0' }, 'brokerHost'],
    ['custom commands not a list', { customCommands: { type: 77 } }, 'test: customCommands'],
    ['a custom type out of range', custom({ type: 256, up: 'r/%c' }), 'test: customCommands[0].type'],
    ['a custom type HyperTCP defines', custom({ type: 30, up: 'r/%c' }), 'test: customCommands[0].type'],
    [
      'a custom type twice',
      custom({ type: 77, up: 'r/%c' }, { type: 77, down: 'd/%c' }),
      'test: customCommands[1].type',
    ],
    ['a custom command with no topic', custom({ type: 77 }), 'test: customCommands[0]'],
    ['an unknown custom key', custom({ type: 77, upp: 'r/%c' }), 'test: customCommands[0].upp'],
    ['a custom template with a wildcard', custom({ type: 77, up: 'r/#' }), 'customCommands[0].up'],
    ['a custom down topic without %c', custom({ type: 77, down: 'all/raw' }), 'customCommands[0].down'],
    [
      'a custom down topic that is the down topic',
      custom({ type: 77, down: 'hypertcp/%c/dn' }),
      'customCommands[0].down',
    ],
    [
      'two custom types on one down topic',
      custom({ type: 77, down: 'r/%c' }, { type: 78, down: 'r/%c' }),
      'customCommands[1].down',
    ],
  ]
  for (const [what, values, key] of cases) {
    it(`refuses ${what}`, () => {
      const err = errorOf(() => resolve(values))
      expect(err.code).to.equal('HT_ERR_CONFIG')
      expect(err.key).to.equal(key)
      expect(err.message).to.match(
        /expected|unknown|must|already|same token|reserved|give|go together|no listener/,
      )
    })
  }

  it('reads lists and host:port from strings (environment, flags)', () => {
    const { layer } = envLayer({
      HYPERTCP_DENY_CIDRS: '10.0.0.0/8, 192.168.0.1',
      HYPERTCP_OVERFLOW_REDIRECT: '[::1]:8081',
    })
    const c = resolveConfig([layer])
    expect(c.denyCidrs).to.deep.equal(['10.0.0.0/8', '192.168.0.1'])
    expect(c.overflowRedirect).to.equal('[::1]:8081')
  })

  it('takes custom command types with an up topic, a down topic or both [HT-5.6]', () => {
    const c = resolve({
      customCommands: [
        { type: 77, up: 'hypertcp/%c/raw/77', down: 'hypertcp/%c/raw/77/dn' },
        { type: 200, up: 'bin/%u/%g/%c' },
        { type: 1, down: 'fw/%c', up: null },
      ],
    })
    expect(c.customCommands).to.deep.equal([
      { type: 77, up: 'hypertcp/%c/raw/77', down: 'hypertcp/%c/raw/77/dn' },
      { type: 200, up: 'bin/%u/%g/%c', down: null },
      { type: 1, up: null, down: 'fw/%c' },
    ])
    expect(resolve({}).customCommands).to.deep.equal([])
  })

  it('suggests the near key', () => {
    expect(errorOf(() => resolve({ prot: 1 })).message).to.contain('did you mean "port"')
  })
})

describe('device registry [HT-3.2] [HT-3.3]', () => {
  const registry = new DeviceRegistry([
    { id: 'dev-1', token: 'tok-1' },
    { id: 'dev-2', token: 'tok-2', username: 'owner', allowedIds: ['dev-2b'] },
    { id: 'dev-3', token: 'tok-3', allowTargets: ['relay-1', 'sensor-*'], allowBroadcast: false },
    { id: 'dev-4', token: 'tok-4', maxDownlinkMembers: 30 },
  ])
  const who = (r: ReturnType<DeviceRegistry['authenticate']>) =>
    r.ok ? { deviceId: r.identity.deviceId, username: r.identity.username } : r

  it('maps a token to its device, raw bytes or string alike', () => {
    expect(who(registry.authenticate(Buffer.from('tok-1'), undefined))).to.deep.equal({
      deviceId: 'dev-1',
      username: 'dev-1',
    })
    expect(who(registry.authenticate('tok-2', undefined))).to.deep.equal({
      deviceId: 'dev-2',
      username: 'owner',
    })
  })

  it("gives a device its entry's downlink limits, and none to a device without", () => {
    const limits = (token: string) => {
      const r = registry.authenticate(token, undefined)
      return r.ok ? r.identity.downlink : 'refused'
    }
    expect(limits('tok-4')).to.deep.equal({ maxDownlinkMembers: 30 })
    expect(limits('tok-1')).to.equal(undefined)
  })

  it('honours a claimed id only when the token allows it', () => {
    expect(who(registry.authenticate('tok-2', 'dev-2b'))).to.deep.equal({
      deviceId: 'dev-2b',
      username: 'owner',
    })
    expect(who(registry.authenticate('tok-2', 'dev-2'))).to.deep.equal({
      deviceId: 'dev-2',
      username: 'owner',
    })
    expect(registry.authenticate('tok-2', 'dev-1')).to.deep.equal({
      ok: false,
      status: Status.NOT_ALLOWED,
      reason: 'not_allowed',
    })
  })

  it('refuses unknown tokens, including prefixes and case variants', () => {
    for (const t of ['tok', 'tok-11', 'TOK-1', '', 'tok-1 ']) {
      expect(registry.authenticate(t, undefined), t).to.deep.equal({
        ok: false,
        status: Status.INVALID_TOKEN,
        reason: 'invalid_token',
      })
    }
  })

  it('knows the username of ids it lists', () => {
    expect(registry.usernameOf('dev-2b')).to.equal('owner')
    expect(registry.usernameOf('elsewhere')).to.equal('elsewhere')
  })

  it("carries each device's publish ACL: targets by id or prefix, and broadcast", () => {
    const open = registry.authenticate('tok-1', undefined)
    const limited = registry.authenticate('tok-3', undefined)
    if (!open.ok || !limited.ok) throw new Error('login failed')
    expect(open.identity.mayMessage('anything')).to.equal(true)
    expect(open.identity.mayBroadcast).to.equal(true)
    expect(
      ['relay-1', 'sensor-9', 'relay-2', 'sensor'].map((t) => limited.identity.mayMessage(t)),
    ).to.deep.equal([true, true, false, false])
    expect(limited.identity.mayBroadcast).to.equal(false)
  })

  it('tells, after a reload, which logged-in identities it no longer admits', () => {
    const r1 = registry.authenticate('tok-2', 'dev-2b')
    const r2 = registry.authenticate('tok-1', undefined)
    if (!r1.ok || !r2.ok) throw new Error('login failed')
    const reloaded = new DeviceRegistry([
      { id: 'dev-1', token: 'tok-1-rotated' },
      { id: 'dev-2', token: 'tok-2' }, // dev-2b no longer allowed
    ])
    expect(reloaded.stillAdmits(r1.identity)).to.equal(false)
    expect(reloaded.stillAdmits(r2.identity)).to.equal(false)
    expect(registry.stillAdmits(r1.identity)).to.equal(true)
  })

  it('takes several broker URLs: comma-separated in a string, or a list; each checked and named', () => {
    const two = ['mqtt://10.0.0.1:1883', 'mqtts://10.0.0.2:8883']
    expect(
      resolveConfig([{ source: 'environment', values: { mqttUrl: two.join(', ') } }]).mqttUrl,
    ).to.deep.equal(two)
    expect(resolveConfig([{ source: 'config file f', values: { mqttUrl: two } }]).mqttUrl).to.deep.equal(two)
    const bad = () =>
      resolveConfig([{ source: 'config file f', values: { mqttUrl: ['mqtt://a:1', 'http://b'] } }])
    expect(bad).to.throw(ConfigError).with.property('key', 'config file f: mqttUrl[1]')
    expect(() => resolveConfig([{ source: 'f', values: { mqttUrl: [] } }])).to.throw(ConfigError)
  })

  it('takes the MQTT version as 5, 3.1.1 or auto (a number 5 in a file too), auto by default', () => {
    expect(resolveConfig([]).mqttProtocolVersion).to.equal('auto')
    expect(resolveConfig([{ source: 'f', values: { mqttProtocolVersion: 5 } }]).mqttProtocolVersion).to.equal(
      '5',
    )
    expect(
      resolveConfig([{ source: 'f', values: { mqttProtocolVersion: '3.1.1' } }]).mqttProtocolVersion,
    ).to.equal('3.1.1')
    expect(() => resolveConfig([{ source: 'f', values: { mqttProtocolVersion: 4 } }])).to.throw(ConfigError)
    expect(() => resolveConfig([{ source: 'f', values: { mqttKeepalive: 1.5 } }])).to.throw(ConfigError)
  })
})
