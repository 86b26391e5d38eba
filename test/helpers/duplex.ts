import { Duplex } from 'node:stream'

/** Two connected in-memory streams (node:stream's duplexPair arrived after Node 20). */
export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = []
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        other().push(chunk)
        cb()
      },
      final(cb) {
        other().push(null)
        cb()
      },
    })
  sides.push(
    make(() => sides[1]!),
    make(() => sides[0]!),
  )
  return [sides[0]!, sides[1]!]
}
