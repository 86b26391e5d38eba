import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { SETTINGS } from '../../src/config/settings.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const unitText = readFileSync(join(root, 'deploy/hypertcp-gateway.service'), 'utf8')

/** `Key=value` of the unit (the last one wins, as in systemd). */
function setting(key: string): string | undefined {
  const lines = unitText.split('\n').filter((l) => l.startsWith(`${key}=`))
  return lines.at(-1)?.slice(key.length + 1)
}

describe('deploy/hypertcp-gateway.service', () => {
  it('restarts on failure but not on a bad configuration, stops with SIGTERM given longer than shutdownTimeout', () => {
    expect(setting('Restart')).to.equal('on-failure')
    expect(setting('RestartPreventExitStatus')).to.equal('2')
    expect(setting('KillSignal')).to.equal('SIGTERM')
    const stop = Number(setting('TimeoutStopSec'))
    // The CLI's own backstop is shutdownTimeout + its connect timeout + 3 s: systemd waits longer.
    expect(stop).to.be.above(SETTINGS.shutdownTimeout.default + SETTINGS.mqttConnectTimeout.default + 3)
    expect(Number(setting('LimitNOFILE'))).to.be.at.least(65536)
    expect(setting('ExecReload')).to.contain('-HUP')
  })

  it('passes systemd-analyze verify', function () {
    const analyze = '/usr/bin/systemd-analyze'
    if (!existsSync(analyze)) {
      console.warn(`      SKIPPED: systemd-analyze is not installed (apt-get install -y systemd)`)
      this.skip()
    }
    // The unit names the install paths; verify checks that ExecStart's program exists.
    const dir = mkdtempSync(join(tmpdir(), 'htgw-unit-'))
    try {
      const path = join(dir, 'hypertcp-gateway.service')
      writeFileSync(
        path,
        unitText.replace('/usr/bin/node', process.execPath).replaceAll('/opt/hypertcp-gateway/', root),
      )
      const r = spawnSync(analyze, ['verify', path], { encoding: 'utf8' })
      expect(r.stderr, 'no warning').to.equal('')
      expect(r.status).to.equal(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
