import { readFileSync } from 'node:fs'

/** A golden frame of the spec (test/fixtures/vectors.json), with its hand-decoded fields. */
export interface Vector {
  readonly name: string
  readonly direction: 'device->gateway' | 'gateway->device'
  readonly hex: string
  readonly clause: string
  readonly note: string
  readonly frame: {
    readonly type: number
    readonly msgId: number
    readonly length: number
    readonly text?: string
    readonly hex?: string
    readonly bodyAbsent?: boolean
  }
}

const file = new URL('../fixtures/vectors.json', import.meta.url)
export const vectors: readonly Vector[] = (JSON.parse(readFileSync(file, 'utf8')) as { vectors: Vector[] })
  .vectors

export function vector(name: string): Vector {
  const v = vectors.find((x) => x.name === name)
  if (!v) throw new Error(`no vector ${name}`)
  return v
}

export function bytes(name: string): Buffer {
  return Buffer.from(vector(name).hex, 'hex')
}

/** The body a vector's frame carries, as bytes. */
export function bodyOf(v: Vector): Buffer {
  if (v.frame.text !== undefined) return Buffer.from(v.frame.text)
  if (v.frame.hex !== undefined) return Buffer.from(v.frame.hex, 'hex')
  return Buffer.alloc(0)
}
