/**
 * `hypertcp-device`, the console device of the README's tour, against a real gateway: what a user
 * types goes out as frames, and what the gateway sends is printed.
 */
import { expect } from 'chai'
import type { Gateway } from '../../src/gateway/gateway.js'
import { CliProcess, requireBuild } from '../helpers/cli.js'
import { startGateway } from '../helpers/gateway.js'
import { MqttWatcher } from '../helpers/mqtt.js'

describe('console device (hypertcp-device)', function () {
  this.timeout(20000)
  let gw: Gateway
  let watcher: MqttWatcher
  let dev: CliProcess | undefined

  before(async () => {
    requireBuild()
    gw = await startGateway({
      customCommands: [{ type: 100, up: 'hypertcp/%c/raw/100', down: 'hypertcp/%c/raw/100/dn' }],
    })
    watcher = await MqttWatcher.connect(gw.mqttUrl, ['hypertcp/dev-1/up', 'hypertcp/dev-1/raw/100'])
  })
  afterEach(async () => {
    dev?.kill()
    await dev?.exited
    dev = undefined
  })
  after(async () => {
    await watcher?.end()
    await gw?.close()
  })

  it('logs in, sends typed JSON and custom frames, and prints downlinks [HT-5.6]', async () => {
    dev = CliProcess.device(['--token', 'tok-1', '--port', String(gw.port)])
    await dev.match(/^← RESPONSE #1 login ok$/)
    dev.type('{"temperature": 25.6}')
    expect(await watcher.json('hypertcp/dev-1/up')).to.deep.equal({ temperature: 25.6 })
    await dev.match(/^← RESPONSE #1 ok$/) // acknowledged once the broker had it
    dev.type('#100 00 ff 10')
    await dev.match(/^→ CMD_100 #2 hex 00ff10$/)
    expect((await watcher.bytes('hypertcp/dev-1/raw/100')).toString('hex')).to.equal('00ff10')
    await dev.match(/^← RESPONSE #2 ok$/)
    dev.type('#100 0')
    await dev.match(/^! a custom frame is #TYPE HEX/) // half a byte: refused, nothing sent

    await watcher.publish('hypertcp/dev-1/dn', '{"command":"toggle"}')
    await dev.match(/^← JSON_MESSAGE #\d+ \{"from":"server","payload":\{"command":"toggle"\}\}$/)
    await watcher.publish('hypertcp/dev-1/raw/100/dn', Buffer.from('c0ffee', 'hex'))
    await dev.match(/^← CMD_100 #\d+ hex c0ffee$/)
  })
})
