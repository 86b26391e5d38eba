import { expect } from 'chai'
import fc from 'fast-check'
import { Status } from '../../src/protocol/constants.js'
import { isValidTopicLevel } from '../../src/protocol/ids.js'
import {
  envelopePrefix,
  isJsonPing,
  memberSpan,
  parseControl,
  parseDownlink,
  parseEnvelope,
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

describe('messages: envelopes [HT-4.1]', () => {
  it('reads targetId and payload', () => {
    expect(parseEnvelope(bodyOf(vector('json_to_server')))).to.deep.equal({
      ok: true,
      targetId: 'server',
      payload: { temperature: 25.6 },
      payloadJson: '{"temperature":25.6}',
    })
  })

  it('accepts any JSON payload value, including null', () => {
    expect(parseEnvelope(Buffer.from('{"targetId":"x","payload":null}'))).to.deep.equal({
      ok: true,
      targetId: 'x',
      payload: null,
      payloadJson: 'null',
    })
    expect(parseEnvelope(Buffer.from('{"targetId":"x","payload":[1]}'))).to.deep.equal({
      ok: true,
      targetId: 'x',
      payload: [1],
      payloadJson: '[1]',
    })
  })

  const bad: [string, Buffer][] = [
    ['empty body', Buffer.alloc(0)],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['not JSON', Buffer.from('hello')],
    ['an array', Buffer.from('[1,2]')],
    ['a string', Buffer.from('"targetId"')],
    ['no targetId', Buffer.from('{"payload":{}}')],
    ['numeric targetId', Buffer.from('{"targetId":5,"payload":{}}')],
    ['no payload', Buffer.from('{"targetId":"server"}')],
  ]
  for (const [what, body] of bad) {
    it(`refuses ${what}`, () => {
      const env = parseEnvelope(body)
      expect(env.ok).to.equal(false)
      if (!env.ok) expect(env.reason).to.be.a('string').and.not.equal('')
    })
  }
})

describe('messages: the payload passes through as the device wrote it [HT-5.1]', () => {
  const span = (text: string) => {
    const s = memberSpan(text, 'payload')
    return s === undefined ? undefined : text.slice(s[0], s[1])
  }

  it('cuts out the payload value wherever it stands', () => {
    expect(span('{"targetId":"server","payload":{"temperature": 25.60}}')).to.equal('{"temperature": 25.60}')
    expect(span('{ "payload" : [1, {"a":"}]"}] , "targetId":"x" }')).to.equal('[1, {"a":"}]"}]')
    expect(span('{"payload":"a \\"quoted\\" }","targetId":"x"}')).to.equal('"a \\"quoted\\" }"')
    expect(span('{"targetId":"x","payload":-1.5e3}')).to.equal('-1.5e3')
    expect(span('{"targetId":"x","payload":true }')).to.equal('true')
    expect(span('{"payload":null,"targetId":"x"}')).to.equal('null')
    expect(span('{"payloads":1,"payload":2}')).to.equal('2')
  })

  it('takes the last of duplicate keys, as JSON.parse does; gives up on escaped keys', () => {
    expect(span('{"payload":1,"targetId":"x","payload":{"b":2}}')).to.equal('{"b":2}')
    expect(span('{"targetId":"x","pay\\u006coad":{"b":2}}')).to.equal(undefined)
    const env = parseEnvelope(Buffer.from('{"targetId":"server","pay\\u006coad":{"b": 2}}'))
    expect(env.ok && env.payloadJson).to.equal('{"b":2}') // re-serialised instead
  })

  it('agrees with JSON.parse on any object (property)', () => {
    const obj = fc
      .record({ payload: fc.jsonValue() }, { requiredKeys: ['payload'] })
      .chain((p) => fc.dictionary(fc.string(), fc.jsonValue()).map((rest) => ({ ...rest, ...p })))
    fc.assert(
      fc.property(obj, fc.constantFrom(0, 1, 2, '\t'), (o, indent) => {
        const text = JSON.stringify(o, null, indent)
        const s = memberSpan(text, 'payload')
        if (s === undefined) return // a key with escapes: the caller re-serialises
        expect(JSON.parse(text.slice(s[0], s[1]))).to.deep.equal(JSON.parse(text).payload)
      }),
      { numRuns: 1000 },
    )
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
