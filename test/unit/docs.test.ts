import { readFileSync } from 'node:fs'
import { expect } from 'chai'
import { renderReference } from '../../src/config/reference.js'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
const readme = read('README.md')
const reference = read('docs/CONFIGURATION.md')
const protocol = read('docs/PROTOCOL.md')

/** Close reasons, as the type in src/session/types.ts declares them. */
const closeReasons = [...read('src/session/types.ts').matchAll(/^\s+\| '([a-z_]+)'$/gm)].map((m) => m[1]!)

describe('documentation stays complete', () => {
  it('docs/CONFIGURATION.md is the one generated from the settings (npm run docs:config)', () => {
    expect(reference).to.equal(renderReference())
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
