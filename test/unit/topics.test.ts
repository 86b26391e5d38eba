import { expect } from 'chai'
import { compileTemplate, gatewayStatusTopic, TemplateError } from '../../src/protocol/topics.js'

describe('topic templates [HT-5]', () => {
  it('renders %c, %u and %g', () => {
    const t = compileTemplate('tenants/%u/devices/%c/up', ['c', 'u'])
    expect(t.render({ c: 'sensor-1', u: 'acme' })).to.equal('tenants/acme/devices/sensor-1/up')
    expect([...t.uses].sort()).to.deep.equal(['c', 'u'])
    expect(gatewayStatusTopic('hypertcp/$gateway/%g/status', 'gw-1')).to.equal(
      'hypertcp/$gateway/gw-1/status',
    )
  })

  it('keeps one-character literals and %% as a literal %', () => {
    expect(compileTemplate('a/%c/b', ['c']).render({ c: 'x' })).to.equal('a/x/b')
    expect(compileTemplate('p%%/%c', ['c']).render({ c: 'x' })).to.equal('p%/x')
    expect(compileTemplate('hypertcp/broadcast', []).render({})).to.equal('hypertcp/broadcast')
  })

  it('refuses wildcards, unknown or unavailable placeholders, and empty templates', () => {
    for (const [source, allowed] of [
      ['a/+/b', ['c']],
      ['a/#', ['c']],
      ['a/%x', ['c']],
      ['a/%', ['c']],
      ['a/%g', ['c']],
      ['', ['c']],
    ] as const) {
      expect(() => compileTemplate(source, allowed), source).to.throw(TemplateError)
    }
  })
})
