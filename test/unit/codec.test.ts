import { expect } from 'chai'
import fc from 'fast-check'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { FrameDecoder, FrameTooLargeError } from '../../src/protocol/decoder.js'
import {
  encodeFrame,
  encodeLoginReply,
  encodeResponse,
  encodeTextFrame,
  nextMsgId,
} from '../../src/protocol/encoder.js'
import { redirectBody } from '../../src/protocol/messages.js'
import { byteByByte, decodeAll, splitAt } from '../helpers/decode.js'
import { bodyOf, bytes, vector, vectors } from '../helpers/vectors.js'

/** Vectors that are complete frames under plain framing (device → gateway stream rules). */
const framed = vectors.filter((v) => !v.frame.bodyAbsent)
const stream = Buffer.concat(framed.map((v) => Buffer.from(v.hex, 'hex')))
const expected = framed.map((v) => ({
  type: v.frame.type,
  msgId: v.frame.msgId,
  length: v.frame.length,
  body: bodyOf(v).toString('hex'),
}))

describe('codec: golden frames [HT-1.1]', () => {
  for (const v of framed) {
    it(`decodes ${v.name} (${v.clause})`, () => {
      const { frames, errors } = decodeAll([Buffer.from(v.hex, 'hex')])
      expect(errors).to.deep.equal([])
      expect(frames).to.deep.equal([
        { type: v.frame.type, msgId: v.frame.msgId, length: v.frame.length, body: bodyOf(v).toString('hex') },
      ])
    })
    it(`round-trips ${v.name}`, () => {
      expect(encodeFrame(v.frame.type, v.frame.msgId, bodyOf(v)).toString('hex')).to.equal(v.hex)
    })
  }

  it('encodes each gateway frame byte for byte', () => {
    expect(encodeLoginReply(1, Status.SUCCESS).toString('hex')).to.equal(vector('login_ok').hex)
    expect(encodeLoginReply(1, Status.INVALID_TOKEN).toString('hex')).to.equal(
      vector('login_invalid_token').hex,
    )
    expect(encodeResponse(1, Status.NOT_AUTHENTICATED).toString('hex')).to.equal(
      vector('not_authenticated').hex,
    )
    expect(encodeResponse(1, 0).toString('hex')).to.equal(vector('ack_ok').hex)
    expect(encodeResponse(2, Status.ILLEGAL_COMMAND_BODY).toString('hex')).to.equal(
      vector('ack_illegal_body').hex,
    )
    expect(encodeResponse(3, 0).toString('hex')).to.equal(vector('ping_reply').hex)
    const dn = vector('downlink')
    expect(encodeTextFrame(Cmd.JSON_MESSAGE, 1, dn.frame.text!).toString('hex')).to.equal(dn.hex)
    const bc = vector('broadcast_to_device')
    expect(encodeTextFrame(Cmd.BROADCAST, 2, bc.frame.text!).toString('hex')).to.equal(bc.hex)
    const rd = encodeTextFrame(Cmd.REDIRECT, 3, redirectBody('gw2.example.net', 8080))
    expect(rd.toString('hex')).to.equal(vector('redirect_json').hex)
  })

  it('decodes the statuses carried in the length field on the device side [HT-2.7]', () => {
    for (const name of ['not_authenticated', 'ack_illegal_body', 'ack_ok', 'ping_reply']) {
      const v = vector(name)
      const { frames } = decodeAll([bytes(name)], 1024, 'device')
      expect(frames, name).to.deep.equal([
        { type: Cmd.RESPONSE, msgId: v.frame.msgId, length: v.frame.length, body: '' },
      ])
    }
    // The login reply is the one RESPONSE with a body, and only while it is expected.
    const reply = decodeAll([bytes('login_ok'), bytes('ack_illegal_body')], 1024, 'device', (d) => {
      d.expectLoginReply = true
    })
    expect(reply.frames).to.deep.equal([
      { type: 0, msgId: 1, length: 1, body: 'c8' },
      { type: 0, msgId: 2, length: 11, body: '' },
    ])
  })

  it('numbers its own frames from 1 and skips 0 on wrap [HT-1.5]', () => {
    expect(nextMsgId(0)).to.equal(1)
    expect(nextMsgId(1)).to.equal(2)
    expect(nextMsgId(0xfffe)).to.equal(0xffff)
    expect(nextMsgId(0xffff)).to.equal(1)
  })
})

describe('codec: any split gives the same frames [HT-1.4]', () => {
  it('decodes all golden frames from one chunk', () => {
    expect(decodeAll([stream]).frames).to.deep.equal(expected)
  })

  it('decodes them for every single cut point', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const { frames, errors } = decodeAll(splitAt(stream, [cut]))
      expect(errors, `cut ${cut}`).to.deep.equal([])
      expect(frames, `cut ${cut}`).to.deep.equal(expected)
    }
  })

  it('decodes them one byte at a time', () => {
    expect(decodeAll(byteByByte(stream)).frames).to.deep.equal(expected)
  })

  it('decodes them for random multi-way splits (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }), (cuts) => {
        expect(decodeAll(splitAt(stream, cuts)).frames).to.deep.equal(expected)
      }),
      { numRuns: 300 },
    )
  })

  it('round-trips arbitrary frames under arbitrary splits (property)', () => {
    const frame = fc.record({
      type: fc.integer({ min: 0, max: 255 }),
      msgId: fc.integer({ min: 0, max: 0xffff }),
      body: fc.uint8Array({ maxLength: 300 }),
    })
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (fs, cuts) => {
          const wire = Buffer.concat(fs.map((f) => encodeFrame(f.type, f.msgId, f.body)))
          const { frames, errors } = decodeAll(
            splitAt(
              wire,
              cuts.map((c) => c % wire.length),
            ),
            300,
          )
          expect(errors).to.deep.equal([])
          expect(frames).to.deep.equal(
            fs.map((f) => ({
              type: f.type,
              msgId: f.msgId,
              length: f.body.length,
              body: Buffer.from(f.body).toString('hex'),
            })),
          )
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('codec: oversize frames are refused at the header [HT-1.3]', () => {
  const oversize = bytes('oversize_header') // announces 60000 bytes
  const after = bytes('device_ping')

  it('reports exactly one error, with the header, and nothing after it', () => {
    const { frames, errors } = decodeAll([bytes('json_to_server'), oversize, after, after], 4096)
    expect(frames.map((f) => f.type)).to.deep.equal([Cmd.JSON_MESSAGE])
    expect(errors).to.have.length(1)
    const err = errors[0]!
    expect(err).to.be.instanceOf(FrameTooLargeError)
    expect(err.code).to.equal('HT_ERR_FRAME_TOO_LARGE')
    expect([err.type, err.msgId, err.length]).to.deep.equal([Cmd.JSON_MESSAGE, 9, 60000])
  })

  it('fails on the fifth header byte, before any body byte arrives, and stays inert', () => {
    const errors: FrameTooLargeError[] = []
    let frames = 0
    const d = new FrameDecoder(
      4096,
      () => {
        frames++
        return undefined
      },
      (e) => errors.push(e),
    )
    for (let i = 0; i < 4; i++) d.push(oversize.subarray(i, i + 1))
    expect(errors).to.have.length(0)
    d.push(oversize.subarray(4, 5))
    expect(errors).to.have.length(1)
    expect(d.failed).to.equal(true)
    expect(d.buffered).to.equal(0) // nothing of the body was kept
    d.push(Buffer.alloc(60000))
    d.push(after)
    expect(errors).to.have.length(1)
    expect(frames).to.equal(0)
  })

  it('accepts a body of exactly the limit and refuses one byte more', () => {
    expect(decodeAll([encodeFrame(30, 1, Buffer.alloc(100))], 100).errors).to.have.length(0)
    expect(decodeAll([encodeFrame(30, 1, Buffer.alloc(101))], 100).errors).to.have.length(1)
  })

  it('never throws, and reports at most one error, on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), (data, cuts) => {
        const buf = Buffer.from(data)
        const { frames, errors } = decodeAll(
          splitAt(
            buf,
            cuts.map((c) => c % (buf.length || 1)),
          ),
          256,
        )
        expect(errors.length).to.be.at.most(1)
        for (const f of frames) expect(f.body.length / 2).to.be.at.most(256)
      }),
      { numRuns: 300 },
    )
  })
})

describe('codec: pause and resume', () => {
  it('holds frames while paused and delivers them in order on resume', () => {
    const seen: number[] = []
    let pauseAt = 2
    const d = new FrameDecoder(
      100,
      (_type, msgId) => {
        seen.push(msgId)
        return msgId === pauseAt ? false : undefined
      },
      () => {},
    )
    const wire = Buffer.concat([1, 2, 3, 4, 5].map((id) => encodeFrame(6, id)))
    d.push(wire.subarray(0, 12)) // frames 1, 2 and part of 3
    expect(seen).to.deep.equal([1, 2])
    expect(d.paused).to.equal(true)
    d.push(wire.subarray(12))
    expect(seen).to.deep.equal([1, 2])
    expect(d.buffered).to.equal(wire.length - 10)
    pauseAt = 4
    d.resume()
    expect(seen).to.deep.equal([1, 2, 3, 4])
    d.resume()
    expect(seen).to.deep.equal([1, 2, 3, 4, 5])
    expect(d.buffered).to.equal(0)
  })
})
