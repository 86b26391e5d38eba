import { expect } from 'chai'
import fc from 'fast-check'
import { Status } from '../../src/protocol/constants.js'
import { parseEnvelope } from '../../src/protocol/envelope.js'
import { isValidTopicLevel } from '../../src/protocol/ids.js'
import {
  countMembers,
  envelopePrefix,
  isJsonPing,
  parseControl,
  parseDownlink,
  parseLogin,
  pongBody,
} from '../../src/protocol/messages.js'
import { bodyOf, vector } from '../helpers/vectors.js'

describe('messages: LOGIN bodies [HT-2.1] [HT-2.2]', () => {
  it('takes a raw body as the token, byte for byte', () => {
    const login = parseLogin(bodyOf(vector('login_raw_token')))
    expect(Buffer.from(login.token).toString()).to.equal('tok-1')
    expect(login.deviceId).to.equal(undefined)
  })

  it('reads the JSON form', () => {
    expect(parseLogin(bodyOf(vector('login_json_form')))).to.deep.equal({ token: 'tok-2', deviceId: 'dev-2' })
    expect(parseLogin(Buffer.from(' {"token":"t"}'))).to.deep.equal({ token: 't', deviceId: undefined })
  })

  it('treats JSON without a string token, and broken JSON, as a raw token', () => {
    for (const text of ['{"token":5}', '{"tok":"x"}', '{"token":"x"', '["token"]', '{}']) {
      const login = parseLogin(Buffer.from(text))
      expect(Buffer.isBuffer(login.token), text).to.equal(true)
      expect(login.token.toString()).to.equal(text)
    }
  })

  it('ignores a device_id that is not a string', () => {
    expect(parseLogin(Buffer.from('{"token":"t","device_id":7}')).deviceId).to.equal(undefined)
  })
})

describe('messages: JSON ping [HT-3.5]', () => {
  it('recognises a ping and echoes its other fields in the pong', () => {
    const ping = { command: 'ping', timestamp: 1234567890, seq: 3 }
    expect(isJsonPing(ping)).to.equal(true)
    expect(isJsonPing({ command: 'pong' })).to.equal(false)
    expect(isJsonPing('ping')).to.equal(false)
    expect(JSON.parse(pongBody(ping))).to.deep.equal({
      from: 'server',
      payload: { command: 'pong', timestamp: 1234567890, seq: 3 },
    })
  })
})

describe('messages: downlinks [HT-5.2]', () => {
  const dn = (text: string) => parseDownlink(Buffer.from(text))
  const text = (d: ReturnType<typeof parseDownlink>) => (d.ok ? d.body.toString() : `refused: ${d.reason}`)

  it('delivers an envelope with a string from as-is', () => {
    const raw = '{"from":"app","payload":{"a":1},"extra":true}'
    const d = dn(raw)
    expect(d.ok && d.from).to.equal('app')
    expect(text(d)).to.equal(raw)
  })

  it('adds from: server to an envelope without one, keeping the rest verbatim', () => {
    expect(text(dn('  {"payload": {"a": 1.50}}'))).to.equal('{"from":"server","payload": {"a": 1.50}}')
  })

  it('wraps any other JSON value as the payload from server', () => {
    expect(text(dn('{"command":"toggle"}'))).to.equal('{"from":"server","payload":{"command":"toggle"}}')
    expect(text(dn(' 42 '))).to.equal('{"from":"server","payload":42}')
    expect(text(dn('"hi"'))).to.equal('{"from":"server","payload":"hi"}')
    // `from` that is not a string: not an envelope, the whole object is the payload
    expect(text(dn('{"from":7,"payload":1}'))).to.equal('{"from":"server","payload":{"from":7,"payload":1}}')
  })

  it('replaces a from it is not to believe by server, and says so', () => {
    const untrusted = (t: string) => parseDownlink(Buffer.from(t), false)
    const forged = untrusted('{"from":"sensor-1","payload":{"command":"unlock"},"x":1}')
    expect(forged.ok && forged.from).to.equal('server')
    expect(forged.ok && forged.replaced).to.equal(true)
    expect(text(forged)).to.equal('{"from":"server","payload":{"command":"unlock"},"x":1}')
    // Nothing to replace: as when believed, and not counted as replaced.
    for (const t of ['{"from":"server","payload":1}', '{"payload":1}', '{"command":"toggle"}']) {
      const d = untrusted(t)
      expect(text(d), t).to.equal(text(dn(t)))
      expect(d.ok && d.replaced, t).to.equal(undefined)
    }
  })

  it('matches the golden downlink frame body', () => {
    const body = vector('downlink').frame.text!
    expect(text(dn('{"command":"control","device":"relay_1","action":"toggle"}'))).to.equal(body)
  })

  it('refuses what is not UTF-8 JSON', () => {
    for (const bad of ['', 'hello', '{"a":', '\u0000'])
      expect(dn(bad).ok, JSON.stringify(bad)).to.equal(false)
    expect(parseDownlink(Buffer.from([0x22, 0xc3, 0x28, 0x22])).ok).to.equal(false)
  })

  it('builds the envelope devices read', () => {
    expect(`${envelopePrefix('dev-1')}{"notification":"System update available"}}`).to.equal(
      vector('broadcast_to_device').frame.text,
    )
  })
})

describe('messages: control commands [HT-5.5]', () => {
  const ctl = (v: unknown) => parseControl(Buffer.from(JSON.stringify(v)))
  it('reads kick and redirect', () => {
    expect(ctl({ action: 'kick' })).to.deep.equal({ action: 'kick' })
    expect(ctl({ action: 'redirect', server: 'gw2', port: 8081 })).to.deep.equal({
      action: 'redirect',
      server: 'gw2',
      port: 8081,
    })
  })
  it('refuses incomplete or unknown commands with a reason', () => {
    for (const v of [
      { action: 'redirect', server: 'x' },
      { action: 'redirect', server: '', port: 1 },
      { action: 'redirect', server: 'x', port: 70000 },
      { action: 'reboot' },
      [1],
      'kick',
    ]) {
      const c = ctl(v)
      expect(c.action, JSON.stringify(v)).to.equal('invalid')
    }
    expect(parseControl(Buffer.from('not json')).action).to.equal('invalid')
  })
})

describe('ids: a device id or targetId is exactly one topic level', () => {
  it('accepts ordinary ids', () => {
    for (const id of ['dev-1', 'device_192.168.1.100_8080', 'é', 'a'.repeat(128)])
      expect(isValidTopicLevel(id), id).to.equal(true)
  })
  it('refuses empty, long, and ids that would reach other topics', () => {
    for (const id of ['', 'a'.repeat(129), 'a/b', '+', '#', 'x+', 'a\u0000b', '../x/']) {
      expect(isValidTopicLevel(id), JSON.stringify(id)).to.equal(false)
    }
  })
  it('has statuses with the protocol family numbers [HT-1.2]', () => {
    expect(Status).to.include({
      SUCCESS: 200,
      NOT_AUTHENTICATED: 5,
      INVALID_TOKEN: 9,
      TIMEOUT: 16,
      QUOTA_LIMIT: 1,
      ILLEGAL_COMMAND: 2,
      NOT_ALLOWED: 6,
      ILLEGAL_COMMAND_BODY: 11,
      SERVER_ERROR: 19,
    })
  })
})

describe('messages: no input makes a parser throw (property)', () => {
  it('parseLogin, parseEnvelope, parseDownlink and parseControl return a verdict for any bytes', () => {
    const jsonish = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.json().map((j) => Buffer.from(j)),
      fc
        .record({
          targetId: fc.anything(),
          payload: fc.anything(),
          from: fc.anything(),
          action: fc.anything(),
        })
        .map((o) => Buffer.from(JSON.stringify(o) ?? 'null')),
    )
    fc.assert(
      fc.property(jsonish, (body) => {
        parseLogin(body)
        const env = parseEnvelope(body)
        expect(env.ok === true || typeof env.reason === 'string').to.equal(true)
        const dn = parseDownlink(body)
        if (dn.ok) JSON.parse(dn.body.toString()) // whatever it delivers is JSON
        expect(['kick', 'redirect', 'takeover', 'invalid']).to.include(parseControl(body).action)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('messages: countMembers (the slots an ArduinoJson 6 document spends)', () => {
  it('counts object members and array elements at every depth, scalars as nothing', () => {
    expect(countMembers(7)).to.equal(0)
    expect(countMembers({})).to.equal(0)
    expect(countMembers({ a: 1, b: 'x', c: null })).to.equal(3)
    expect(countMembers({ v: [0, 0, 0] })).to.equal(4)
    expect(countMembers({ a: { b: { c: [1, { d: 2 }] } } })).to.equal(6)
  })

  it('stops past the limit, and copes with nesting that would exhaust a recursive walk', () => {
    const wide = Array.from({ length: 10_000 }, () => 1)
    expect(countMembers(wide, 30)).to.be.above(30)
    let deep: unknown = 1
    for (let k = 0; k < 100_000; k++) deep = [deep]
    expect(countMembers(deep)).to.equal(100_000)
  })

  it('is given the payload by parseDownlink, whichever form the message has', () => {
    const payload = (text: string) => {
      const d = parseDownlink(Buffer.from(text))
      return d.ok ? d.payload : d.reason
    }
    expect(payload('{"k":1}')).to.deep.equal({ k: 1 })
    expect(payload('{"from":"app","payload":{"k":2}}')).to.deep.equal({ k: 2 })
    expect(payload('{"payload":[3]}')).to.deep.equal([3])
    expect(payload('[4]')).to.deep.equal([4])
  })
})
