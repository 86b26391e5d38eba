import { expect } from 'chai'
import { CHUNK, ChunkDecoder, LINE, LINE_CUT, LineDecoder } from '../../src/protocol/stream-decoders.js'

type Got = [number, string]

function lines(max: number, stopAfter = Number.POSITIVE_INFINITY) {
  const got: Got[] = []
  const d = new LineDecoder(max, (type, _id, body) => {
    got.push([type, body.toString()])
    return got.length < stopAfter
  })
  return { d, got }
}

describe('stream decoders (dial-out framings)', () => {
  it('splits lines on \\n, drops a \\r before it, skips empty lines, joins lines split across chunks', () => {
    const { d, got } = lines(64)
    d.push(Buffer.from('one\r\ntw'))
    expect(d.partial).to.equal(2)
    d.push(Buffer.from('o\n\n\r\nthr'))
    d.push(Buffer.from('ee\n'))
    expect(got).to.deep.equal([
      [LINE, 'one'],
      [LINE, 'two'],
      [LINE, 'three'],
    ])
    expect(d.partial).to.equal(0)
  })

  it('cuts a line at maxFrameSize, whichever chunk it ends in, and drops the rest of it', () => {
    const { d, got } = lines(8)
    d.push(Buffer.from('abcdef'))
    d.push(Buffer.from('ghijkl'))
    d.push(Buffer.from('mnop\nok\n'))
    d.push(Buffer.from('0123456789\n'))
    expect(got).to.deep.equal([
      [LINE_CUT, 'abcdefgh'],
      [LINE, 'ok'],
      [LINE_CUT, '01234567'],
    ])
    expect(d.partial).to.be.at.most(8)
  })

  it('holds what arrives once the handler says stop, and delivers it on resume, in order', () => {
    const { d, got } = lines(64, 1)
    d.push(Buffer.from('a\nb\nc'))
    d.push(Buffer.from('\nd\n'))
    expect(got).to.deep.equal([[LINE, 'a']])
    d.resume()
    expect(got.map((g) => g[1])).to.deep.equal(['a', 'b'])
    d.resume()
    d.resume()
    d.resume()
    expect(got.map((g) => g[1])).to.deep.equal(['a', 'b', 'c', 'd'])
  })

  it('keeps a line in progress past the chunk it came in (the socket reuses nothing it handed over)', () => {
    const { d, got } = lines(64)
    const chunk = Buffer.from('hel')
    d.push(chunk)
    chunk.fill(0x21)
    d.push(Buffer.from('lo\n'))
    expect(got).to.deep.equal([[LINE, 'hello']])
  })

  it('cuts raw bytes into chunks of at most maxFrameSize, pausing and resuming', () => {
    const got: string[] = []
    let allow = 2
    const d = new ChunkDecoder(4, (type, _id, body) => {
      expect(type).to.equal(CHUNK)
      got.push(body.toString())
      return --allow > 0
    })
    d.push(Buffer.from('abcdefghij'))
    expect(got).to.deep.equal(['abcd', 'efgh'])
    allow = 10
    d.resume()
    d.push(Buffer.from('k'))
    expect(got).to.deep.equal(['abcd', 'efgh', 'ij', 'k'])
  })
})
