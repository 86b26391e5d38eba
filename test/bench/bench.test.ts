import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import { requireBuild, root } from '../helpers/cli.js'
import { requireMosquitto } from '../helpers/mosquitto.js'

/** The keys issue 4 requires in bench/results/latest.json. */
const REQUIRED = [
  'uplink_ratio_qos1_embedded',
  'uplink_ratio_qos1_mosquitto',
  'uplink_msgs_per_s_qos1_embedded',
  'added_p99_ms_at_1k',
  'added_p99_ms_at_10k',
  'max_devices',
  'rss_kib_per_device',
  'logins_per_s',
] as const

/**
 * The gateway-vs-direct ratios of logins and downlinks, and which of them quick mode measures (its
 * scale run keeps to the first broker, embedded): those must be positive numbers; the other is
 * there, null when not measured.
 */
const RATIOS = {
  login_ratio_embedded: true,
  login_ratio_mosquitto: false,
  downlink_ratio_embedded: true,
  downlink_ratio_mosquitto: true,
  downlink_at_least_once_share_embedded: true,
  downlink_at_least_once_share_mosquitto: true,
} as const

/**
 * Runs `npm run bench -- --quick` once and checks that the benchmark itself works: every figure is
 * there and is a number, and no acknowledged message was lost. Never a timing assertion: how fast
 * the gateway is is what the benchmark reports, not what the test suite decides.
 */
describe('benchmark (bench/run.ts --quick)', function () {
  this.timeout(180_000)
  const dir = mkdtempSync(join(tmpdir(), 'htgw-bench-test-'))
  const out = join(dir, 'latest.json')
  let results: Record<string, unknown>
  let output = ''
  let exitCode: number | null = null

  before(async function () {
    requireBuild()
    requireMosquitto(this)
    // npm test has just built dist/; the quick mode must not rebuild it.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', '--quick', '--no-build', '--out', out],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    exitCode = await new Promise((resolve) => child.on('exit', resolve))
    results = JSON.parse(readFileSync(out, 'utf8'))
  })

  after(() => rmSync(dir, { recursive: true, force: true }))

  it('completes without a failed run', () => {
    expect(results.failures, output).to.deep.equal([])
    expect(exitCode, output).to.equal(0)
  })

  it('reports every required figure as a finite number', () => {
    for (const key of REQUIRED) {
      expect(results[key], key).to.be.a('number')
      expect(Number.isFinite(results[key] as number), key).to.equal(true)
    }
  })

  it('reports the login and downlink ratios (at-least-once / at-most-once too) quick mode measures as positive numbers', () => {
    for (const [key, measured] of Object.entries(RATIOS)) {
      expect(results, key).to.have.property(key)
      if (!measured && results[key] === null) continue
      expect(results[key], key).to.be.a('number')
      expect(Number.isFinite(results[key] as number) && (results[key] as number) > 0, key).to.equal(true)
    }
    for (const row of results.downlink as { broker: string; direct_msgs_per_s: number; ratio: number }[]) {
      expect(row.direct_msgs_per_s, `${row.broker} direct downlink`).to.be.greaterThan(0)
      expect(row.ratio, `${row.broker} downlink ratio`).to.be.greaterThan(0)
    }
    const scale = (results.scale as { direct_logins_per_s: number }[])[0]!
    expect(scale.direct_logins_per_s).to.be.greaterThan(0)
  })

  it('loses no acknowledged message', () => {
    expect(results.lost_acked_messages).to.equal(0)
    for (const row of results.uplink as { qos: number; side: string; lost: number }[]) {
      if (row.qos === 1) expect(row.lost, `${row.side} QoS 1`).to.equal(0)
    }
  })

  it('puts the machine first', () => {
    expect(Object.keys(results)[0]).to.equal('machine')
    const machine = results.machine as Record<string, unknown>
    for (const key of ['cpu_model', 'cores', 'node', 'open_files_limit'])
      expect(machine, key).to.have.property(key)
  })
})
