/**
 * End-to-end flow control for QoS 0 runs. QoS 0 has no acknowledgement from the broker, so a
 * closed loop paced by the sender's own writes only measures how fast the broker can buffer: the
 * backlog (and the latency) grows without bound. Instead the subscriber returns a credit for every
 * message it receives, over a plain TCP connection to the generator that owns the device (4 bytes:
 * the device index), and each device keeps `window` messages in flight end to end. The same for
 * the gateway and the direct clients, so the comparison stays fair.
 */
import { createConnection, type Socket } from 'node:net'

/** Generator side: connects to the subscriber's credit port; `onCredits` runs once per read. */
export function connectCredits(
  port: number,
  first: number,
  count: number,
  onCredit: (localIndex: number) => void,
  onBatchEnd: () => void,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port, noDelay: true })
    let rest: Buffer | null = null
    socket.on('data', (chunk: Buffer) => {
      let buf = chunk
      if (rest !== null) {
        buf = Buffer.concat([rest, chunk])
        rest = null
      }
      const whole = buf.length - (buf.length % 4)
      for (let off = 0; off < whole; off += 4) onCredit(buf.readUInt32BE(off) - first)
      if (whole < buf.length) rest = Buffer.from(buf.subarray(whole))
      onBatchEnd()
    })
    socket.once('error', reject)
    socket.once('connect', () => {
      const hello = Buffer.allocUnsafe(8)
      hello.writeUInt32BE(first, 0)
      hello.writeUInt32BE(count, 4)
      socket.write(hello)
      resolve(socket)
    })
  })
}
