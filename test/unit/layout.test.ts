import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'

const src = fileURLToPath(new URL('../../src', import.meta.url))

/**
 * The layers of src/, lowest first (STYLE.md): a file may import its own layer and those below,
 * never one above. Files at the top of src/ and each folder are placed by name.
 */
const RANK: Record<string, number> = {
  'errors.ts': 0,
  'log.ts': 0,
  'stats.ts': 0,
  protocol: 1,
  limits: 1,
  auth: 2,
  config: 2,
  session: 3,
  delivery: 3,
  dialects: 4,
  bridge: 4,
  adapters: 5,
  gateway: 6,
  'heap-policy.ts': 6,
  'index.ts': 7,
  'cli.ts': 7,
  cluster: 7,
  'device-cli.ts': 7,
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

const rankOf = (path: string) => RANK[relative(src, path).split('/')[0]!]

describe('source layout (STYLE.md)', () => {
  const all = files(src)

  it('places every file of src/ in a layer', () => {
    for (const f of all) expect(rankOf(f), relative(src, f)).to.be.a('number')
  })

  it('has no import pointing up a layer', () => {
    const up: string[] = []
    for (const f of all) {
      for (const m of readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
        const target = normalize(join(dirname(f), m[1]!)).replace(/\.js$/, '.ts')
        if (rankOf(target)! > rankOf(f)!) up.push(`${relative(src, f)} -> ${relative(src, target)}`)
      }
    }
    expect(up).to.deep.equal([])
  })

  it('throws only the project error classes, each with a code', () => {
    const plain = all.filter((f) => /throw new Error\(|reject\(new Error\(/.test(readFileSync(f, 'utf8')))
    expect(plain.map((f) => relative(src, f))).to.deep.equal([])
  })

  it('keeps files to about 300 lines, or says at the top why one is longer', () => {
    const long = all.filter((f) => {
      const text = readFileSync(f, 'utf8')
      const head = text.slice(0, text.indexOf('*/') + 2)
      return text.split('\n').length > 320 && !head.includes('Longer than 300 lines: ')
    })
    expect(long.map((f) => relative(src, f))).to.deep.equal([])
  })
})
