import { isUtf8 } from 'node:buffer'
import { expect } from 'chai'
import fc from 'fast-check'
import { type Envelope, parseEnvelope } from '../../src/protocol/envelope.js'
import { isJsonPing } from '../../src/protocol/messages.js'
import { bodyOf, vector } from '../helpers/vectors.js'

/**
 * What the envelope scanner must agree with: JSON.parse of the whole body, then the checks of
 * [HT-4.1] on the object it builds. This was the gateway's own parser before the scanner.
 */
function reference(
  body: Buffer,
): { ok: false; reason: string } | { ok: true; targetId: string; payload: unknown } {
  if (body.length === 0) return { ok: false, reason: 'empty body' }
  if (!isUtf8(body)) return { ok: false, reason: 'body is not valid UTF-8' }
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    return { ok: false, reason: 'body is not JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, reason: 'body is not a JSON object' }
  const record = value as Record<string, unknown>
  if (typeof record.targetId !== 'string') return { ok: false, reason: 'targetId is missing or not a string' }
  if (!Object.hasOwn(record, 'payload')) return { ok: false, reason: 'payload is missing' }
  return { ok: true, targetId: record.targetId, payload: record.payload }
}

/** The scanner's verdict on `body` is JSON.parse's, and its payload is the device's own text. */
function agrees(body: Buffer): void {
  const got: Envelope = parseEnvelope(body)
  const want = reference(body)
  if (!want.ok) {
    expect(got, body.toString('latin1')).to.deep.equal(want)
    return
  }
  expect(got.ok, body.toString('latin1')).to.equal(true)
  if (!got.ok) return
  expect(got.targetId).to.equal(want.targetId)
  expect(JSON.parse(got.payloadJson)).to.deep.equal(want.payload)
  expect(body.toString('utf8')).to.include(got.payloadJson) // cut out, not re-serialised
  if (isJsonPing(want.payload)) expect(got.mayBePing).to.equal(true) // never a ping missed
}

describe('envelope: reading a device message body [HT-4.1]', () => {
  it('reads targetId and payload of the golden frame', () => {
    expect(parseEnvelope(bodyOf(vector('json_to_server')))).to.deep.equal({
      ok: true,
      targetId: 'server',
      payloadJson: '{"temperature":25.6}',
      mayBePing: false,
    })
  })

  it('accepts any JSON payload value, including null', () => {
    for (const payload of ['null', '[1]', '"s"', '-0.5e-3', 'true', 'false', '{}', '[]', '0'])
      expect(parseEnvelope(Buffer.from(`{"targetId":"x","payload":${payload}}`))).to.deep.equal({
        ok: true,
        targetId: 'x',
        payloadJson: payload,
        mayBePing: false,
      })
  })

  const bad: [string, string | Buffer, string][] = [
    ['an empty body', Buffer.alloc(0), 'empty body'],
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'body is not valid UTF-8'],
    ['text that is not JSON', 'hello', 'body is not JSON'],
    ['a trailing comma', '{"targetId":"x","payload":1,}', 'body is not JSON'],
    ['a second value', '{"targetId":"x","payload":1} {}', 'body is not JSON'],
    ['an unterminated string', '{"targetId":"x","payload":"ab', 'body is not JSON'],
    ['a raw control character in a string', '{"targetId":"x","payload":"a\tb"}', 'body is not JSON'],
    ['a bad escape', '{"targetId":"x","payload":"\\x41"}', 'body is not JSON'],
    ['an array closed by a brace', '{"targetId":"x","payload":[1}}', 'body is not JSON'],
    ['an object closed by a bracket', '{"targetId":"x","payload":{"a":1]}', 'body is not JSON'],
    ['a member without a value', '{"targetId":"x","payload"}', 'body is not JSON'],
    ['a leading zero', '{"targetId":"x","payload":01}', 'body is not JSON'],
    ['a bare minus', '{"targetId":"x","payload":-}', 'body is not JSON'],
    ['a misspelt literal', '{"targetId":"x","payload":nul}', 'body is not JSON'],
    ['a single-quoted key', "{'targetId':'x'}", 'body is not JSON'],
    ['an array', '[1,2]', 'body is not a JSON object'],
    ['a string', '"targetId"', 'body is not a JSON object'],
    ['no targetId', '{"payload":{}}', 'targetId is missing or not a string'],
    ['a numeric targetId', '{"targetId":5,"payload":{}}', 'targetId is missing or not a string'],
    ['a targetId only nested', '{"a":{"targetId":"x"},"payload":1}', 'targetId is missing or not a string'],
    ['no payload', '{"targetId":"server"}', 'payload is missing'],
    ['a payload only nested', '{"targetId":"x","a":[{"payload":1}]}', 'payload is missing'],
  ]
  for (const [what, body, reason] of bad) {
    it(`refuses ${what}: "${reason}"`, () => {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body
      expect(parseEnvelope(bytes)).to.deep.equal({ ok: false, reason })
      expect(reference(bytes)).to.deep.equal({ ok: false, reason }) // and so did JSON.parse
    })
  }

  it('cuts the payload out as the device wrote it, wherever it stands [HT-5.1]', () => {
    const payloadOf = (text: string) => {
      const env = parseEnvelope(Buffer.from(text))
      return env.ok ? env.payloadJson : env.reason
    }
    expect(payloadOf('{"targetId":"server","payload":{"temperature": 25.60}}')).to.equal(
      '{"temperature": 25.60}',
    )
    expect(payloadOf('{ "payload" : [1, {"a":"}]"}] , "targetId":"x" }')).to.equal('[1, {"a":"}]"}]')
    expect(payloadOf('{"payload":"a \\"quoted\\" }","targetId":"x"}')).to.equal('"a \\"quoted\\" }"')
    expect(payloadOf('{"targetId":"x","payload":-1.5e3}')).to.equal('-1.5e3')
    expect(payloadOf('{"targetId":"x","payload":true }')).to.equal('true')
    expect(payloadOf('{"payloads":1,"payload":2,"targetId":"x"}')).to.equal('2')
    expect(payloadOf('{"targetId":"x","payload":{"s":"€ ü 😀"}}')).to.equal('{"s":"€ ü 😀"}')
  })

  it('takes the last of duplicate members, as JSON.parse does, and reads keys written with escapes', () => {
    const env = (text: string) => parseEnvelope(Buffer.from(text))
    expect(env('{"payload":1,"targetId":"x","payload":{"b":2}}')).to.include({
      ok: true,
      payloadJson: '{"b":2}',
    })
    expect(env('{"targetId":"a","payload":1,"targetId":"b"}')).to.include({ targetId: 'b' })
    expect(env('{"targetId":"a","payload":1,"targetId":null}')).to.include({ ok: false })
    // An escaped key is still the key; the payload stays the device's bytes (formerly re-serialised).
    expect(env('{"targetId":"server","pay\\u006coad":{"b": 2}}')).to.include({ payloadJson: '{"b": 2}' })
    expect(env('{"t\\u0061rgetId":"d\\u00e9v-1","payload":0}')).to.include({ targetId: 'dév-1' })
  })

  it('marks a payload that may be the JSON ping [HT-3.5], and only objects with such a key', () => {
    const mayBePing = (text: string) => {
      const env = parseEnvelope(Buffer.from(text))
      return env.ok && env.mayBePing
    }
    expect(mayBePing('{"targetId":"server","payload":{"command":"ping","seq":1}}')).to.equal(true)
    expect(mayBePing('{"targetId":"server","payload":{"seq":1,"comm\\u0061nd":"ping"}}')).to.equal(true)
    expect(mayBePing('{"targetId":"server","payload":{"seq":1}}')).to.equal(false)
    expect(mayBePing('{"targetId":"server","payload":{"a":{"command":"ping"}}}')).to.equal(false) // nested
    expect(mayBePing('{"targetId":"server","payload":["command"]}')).to.equal(false)
    expect(mayBePing('{"targetId":"server","command":"ping","payload":1}')).to.equal(false)
    expect(mayBePing('{"payload":{"command":"ping"},"targetId":"server","payload":{}}')).to.equal(false)
  })

  it('takes a deeply nested payload without recursion', () => {
    const depth = 100_000
    const body = Buffer.from(`{"targetId":"x","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`)
    const env = parseEnvelope(body)
    expect(env.ok && env.payloadJson.length).to.equal(2 * depth)
    expect(parseEnvelope(Buffer.from(`{"targetId":"x","payload":${'['.repeat(depth)}}`))).to.include({
      ok: false,
    })
  })
})

describe('envelope: the scanner agrees with JSON.parse (differential, property)', () => {
  const space = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ')
  const envelopeText = fc
    .record({
      targetId: fc.oneof(fc.constantFrom('server', 'broadcast', 'dev-1'), fc.string(), fc.jsonValue()),
      payload: fc.jsonValue(),
      extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      order: fc.nat(5),
      indent: fc.constantFrom(undefined, 0, 1, '\t'),
      drop: fc.constantFrom('none', 'none', 'targetId', 'payload'),
    })
    .map(({ targetId, payload, extra, order, indent, drop }) => {
      const members: [string, unknown][] = Object.entries(extra)
      if (drop !== 'targetId') members.splice(order % (members.length + 1), 0, ['targetId', targetId])
      if (drop !== 'payload') members.splice((order * 7) % (members.length + 1), 0, ['payload', payload])
      // Members written one by one: duplicates kept, keys sometimes escaped.
      return `{${members
        .map(
          ([k, v], i) =>
            `${i % 3 === 2 ? escapeAll(k) : JSON.stringify(k)}:${JSON.stringify(v, null, indent)}`,
        )
        .join(',')}}`
    })

  it('on generated envelopes, with whitespace between tokens', () => {
    fc.assert(
      fc.property(envelopeText, space, space, (text, before, after) =>
        agrees(Buffer.from(before + text + after)),
      ),
      { numRuns: 3000 },
    )
  })

  it('on envelopes with bytes inserted, deleted or replaced (mostly JSON punctuation)', () => {
    const byte = fc.oneof(
      fc.constantFrom(...Buffer.from('{}[]":,\\ -+.eE0123456789tfnulr/u\t\n')),
      fc.integer({ min: 0, max: 255 }),
    )
    const edit = fc.record({ at: fc.nat(), op: fc.constantFrom('insert', 'delete', 'replace'), byte })
    fc.assert(
      fc.property(envelopeText, fc.array(edit, { minLength: 1, maxLength: 4 }), (text, edits) => {
        const bytes = [...Buffer.from(text)]
        for (const { at, op, byte: b } of edits) {
          const i = at % (bytes.length + 1)
          if (op === 'insert') bytes.splice(i, 0, b)
          else if (op === 'delete') bytes.splice(i, 1)
          else bytes[Math.min(i, bytes.length - 1)] = b
        }
        agrees(Buffer.from(bytes))
      }),
      { numRuns: 10_000 },
    )
  })

  it('on any JSON text, and on any bytes', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => agrees(Buffer.from(text))),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => agrees(Buffer.from(bytes))),
      { numRuns: 2000 },
    )
  })

  it('on numbers, literals and escapes at their edges', () => {
    const scalars = [
      '0',
      '-0',
      '1',
      '-1',
      '10',
      '1.0',
      '1e5',
      '1E+5',
      '1e-5',
      '-0.0e0',
      '123456789012345678901234567890',
      '01',
      '-01',
      '1.',
      '.5',
      '1e',
      '1e+',
      '+1',
      '--1',
      '1.e5',
      '0x10',
      'NaN',
      'Infinity',
      '-',
      'true',
      'false',
      'null',
      'tru',
      'nulll',
      'True',
      'nul',
      '"\\u00e9"',
      '"\\uD83D\\uDE00"',
      '"\\ud800"',
      '"\\u12"',
      '"\\u12G4"',
      '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
      '"\\a"',
      '"\u007f"',
      '"\u0000"',
      '"\u001f"',
      '" "',
    ]
    for (const s of scalars) {
      agrees(Buffer.from(`{"targetId":"x","payload":${s}}`))
      agrees(Buffer.from(`{"targetId":${s},"payload":1}`))
      agrees(Buffer.from(`{"targetId":"x","payload":[${s},${s}]}`))
      agrees(Buffer.from(s))
    }
  })
})

/** A key with every character written as a \u escape: the same key to JSON.parse. */
function escapeAll(key: string): string {
  let out = '"'
  for (let i = 0; i < key.length; i++) out += `\\u${key.charCodeAt(i).toString(16).padStart(4, '0')}`
  return `${out}"`
}
