import { expect } from 'chai'
import { BrokerAcl, type BrokerRole, withoutShare } from '../../src/auth/broker-acl.js'
import { hashPassword, parseHash, verifyPassword } from '../../src/auth/passwords.js'
import { defaults } from '../../src/config/resolve.js'

const acl = new BrokerAcl(
  { ...defaults().topics, peer: 'hypertcp/%c/peer', peerBroadcast: 'hypertcp/$peers/broadcast' },
  [{ type: 77, up: 'raw/%c/in', down: 'raw/%c/out' }],
)

const topics = {
  up: 'hypertcp/sensor-1/up',
  down: 'hypertcp/sensor-1/dn',
  status: 'hypertcp/sensor-1/status',
  control: 'hypertcp/sensor-1/ctl',
  broadcast: 'hypertcp/broadcast',
  gatewayStatus: 'hypertcp/$gateway/gw-1/status',
  peer: 'hypertcp/sensor-1/peer',
  peerBroadcast: 'hypertcp/$peers/broadcast',
  rawUp: 'raw/sensor-1/in',
  rawDown: 'raw/sensor-1/out',
  other: 'lab/temperature',
  sys: '$SYS/broker/clients',
}
type Name = keyof typeof topics

/** What each role may publish and read, by topic class: the README's table. */
const RIGHTS: Record<BrokerRole, { write: Name[]; read: Name[] }> = {
  app: {
    write: ['down', 'broadcast', 'rawDown', 'other'],
    read: ['up', 'status', 'broadcast', 'peerBroadcast', 'gatewayStatus', 'rawUp', 'other'],
  },
  monitor: {
    write: [],
    read: ['up', 'status', 'broadcast', 'peerBroadcast', 'gatewayStatus', 'rawUp', 'other', 'sys'],
  },
  admin: {
    write: ['down', 'broadcast', 'rawDown', 'control', 'other'],
    read: Object.keys(topics) as Name[],
  },
  gateway: {
    write: (Object.keys(topics) as Name[]).filter((n) => n !== 'sys'),
    read: Object.keys(topics) as Name[],
  },
}

describe('broker ACL: roles and topic classes', () => {
  it('classifies topics by the templates, custom ones included', () => {
    for (const [name, topic] of Object.entries(topics))
      expect(acl.classify(topic), topic).to.deep.equal([name])
  })

  for (const [role, rights] of Object.entries(RIGHTS) as [BrokerRole, { write: Name[]; read: Name[] }][]) {
    it(`gives ${role} exactly its rights on every class`, () => {
      for (const [name, topic] of Object.entries(topics) as [Name, string][]) {
        expect(acl.mayPublish(role, topic), `${role} publish ${topic}`).to.equal(rights.write.includes(name))
        expect(acl.mayRead(role, topic), `${role} read ${topic}`).to.equal(rights.read.includes(name))
      }
    })
  }

  it('refuses subscriptions that could only match what the role may not read, $share looked through', () => {
    const refused = ['hypertcp/+/dn', 'hypertcp/x/ctl', '$share/g/hypertcp/+/ctl', 'raw/+/out', '$SYS/#']
    for (const f of refused) expect(acl.maySubscribe('app', f), f).to.equal(false)
    // Wider filters are granted; what they must not see is withheld per message (mayRead).
    const granted = [
      '#',
      'hypertcp/#',
      'hypertcp/+/+',
      'hypertcp/+/up',
      '$share/g/hypertcp/+/status',
      'lab/#',
    ]
    for (const f of granted) expect(acl.maySubscribe('app', f), f).to.equal(true)
    expect(acl.maySubscribe('monitor', '$SYS/#')).to.equal(true)
    expect(acl.maySubscribe('admin', 'hypertcp/+/ctl')).to.equal(true)
    expect(withoutShare('$share/group/a/b')).to.equal('a/b')
  })

  it('matches placeholders inside a level only where the literal text fits', () => {
    const custom = new BrokerAcl({ ...defaults().topics, down: 'cmd/dev-%c' })
    expect(custom.classify('cmd/dev-7')).to.deep.equal(['down'])
    expect(custom.classify('cmd/other-7')).to.deep.equal(['other'])
    expect(custom.maySubscribe('app', 'cmd/dev-7')).to.equal(false)
    expect(custom.maySubscribe('app', 'cmd/+')).to.equal(true) // cmd/other-7 is readable
  })
})

describe('broker passwords: scrypt hashes', () => {
  it('verifies the password of a hash and nothing else; refuses malformed hashes', async () => {
    const hash = await hashPassword('s3cret')
    expect(hash).to.match(/^scrypt\$32768\$8\$1\$[\w-]+\$[\w-]+$/)
    expect(await verifyPassword(Buffer.from('s3cret'), hash)).to.equal(true)
    expect(await verifyPassword(Buffer.from('s3cret '), hash)).to.equal(false)
    expect(parseHash('scrypt$1000$8$1$aaaaaaaaaaa$bbbbbbbbbbbbbbbbbbbbbbbb')).to.have.property('error')
    expect(parseHash('bcrypt$x')).to.have.property('error')
  })
})
