import { readFileSync } from 'node:fs'
import { expect } from 'chai'
import { snake } from '../../src/config/resolve.js'
import { QOS_KEYS, SETTINGS, TOPIC_KEYS } from '../../src/config/schema.js'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
const readme = read('README.md')
const protocol = read('docs/PROTOCOL.md')
const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

/** Close reasons, as the type in src/session/types.ts declares them. */
const closeReasons = [...read('src/session/types.ts').matchAll(/^\s+\| '([a-z_]+)'$/gm)].map((m) => m[1]!)

describe('documentation stays complete', () => {
  it('the README configuration reference lists every setting with its flag and variable', () => {
    for (const key of Object.keys(SETTINGS)) {
      expect(readme, key).to.contain(`| \`${key}\` | \`--${kebab(key)}\` | \`HYPERTCP_${snake(key)}\` |`)
    }
    for (const key of [...TOPIC_KEYS, ...QOS_KEYS]) expect(readme, key).to.contain(`\`${key}\``)
  })

  it('README and docs/PROTOCOL.md name every close reason', () => {
    expect(closeReasons.length).to.be.greaterThan(10)
    for (const reason of closeReasons) {
      expect(readme, reason).to.contain(`\`${reason}\``)
      expect(protocol, reason).to.contain(`\`${reason}\``)
    }
  })

  it('the README first screen gives the run and test commands', () => {
    const firstScreen = readme.split('\n').slice(0, 20).join('\n')
    expect(firstScreen).to.contain('npm ci && npm start').and.contain('npm test')
  })
})
