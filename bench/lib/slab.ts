/**
 * Hands out regions of large pre-allocated buffers for outgoing batches. A region is never
 * reused: `socket.write` may keep a reference to it until the kernel takes the bytes, so the
 * generators cannot patch one buffer per device in place. Carving regions out of 256 KiB slabs
 * costs one allocation per slab instead of one per frame; an exhausted slab is garbage once the
 * writes that reference it are done.
 */
export class Slab {
  private buf: Buffer
  private off = 0
  private readonly size: number

  constructor(size = 256 * 1024) {
    this.size = size
    this.buf = Buffer.allocUnsafe(size)
  }

  alloc(n: number): Buffer {
    if (this.off + n > this.buf.length) {
      this.buf = Buffer.allocUnsafe(Math.max(this.size, n))
      this.off = 0
    }
    const region = this.buf.subarray(this.off, this.off + n)
    this.off += n
    return region
  }
}
