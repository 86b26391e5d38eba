import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'chai'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import type { Gateway } from '../../src/gateway/gateway.js'
import { Cmd, Status } from '../../src/protocol/constants.js'
import { startGateway } from '../helpers/gateway.js'
import { RawClient } from '../helpers/raw-client.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'dashboard-token'

/**
 * Skips the suite with a printed reason when Debian's Chromium is not installed — unless
 * HTGW_REQUIRE_TOOLS is set (CI), where its absence fails the run.
 */
function requireChromium(ctx: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return
  const reason = 'chromium is not installed (apt-get install -y chromium)'
  if (process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${reason}`)
  console.warn(`      SKIPPED: ${ctx.test?.parent?.fullTitle() ?? 'suite'}: ${reason}`)
  ctx.skip()
}

describe('dashboard in a real browser (headless Chromium, puppeteer-core)', function () {
  this.timeout(60_000)
  let gw: Gateway
  let browser: Browser
  let page: Page
  let profile: string
  const devices: RawClient[] = []

  before(async function () {
    requireChromium(this)
    gw = await startGateway({ adminPort: 0, adminToken: TOKEN })
    profile = mkdtempSync(join(tmpdir(), 'htgw-chromium-'))
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      // As root in CI, without the network Chromium would otherwise try to reach at every start.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    page = await browser.newPage()
    await page.setViewport({ width: 1200, height: 720 })
    // The page asks once for the token (the API answered 401) and keeps it in session storage.
    page.on('dialog', (dialog) => void dialog.accept(TOKEN))
    await page.goto(`http://127.0.0.1:${gw.adminPort}/`)
    // (Expressions run in the page: given as text, so that this file needs no DOM typings.)
    await page.waitForFunction("document.getElementById('broker')?.textContent?.startsWith('connected')")
  })
  after(async () => {
    for (const d of devices) d.destroy()
    await browser?.close()
    await gw?.close()
    if (profile) rmSync(profile, { recursive: true, force: true })
  })

  it('shows a device that logs in, sends it a typed message, and kicks it', async () => {
    const device = await RawClient.connect(gw.port)
    devices.push(device)
    expect(await device.login('tok-1')).to.equal(Status.SUCCESS)
    const row = 'tr[data-id="dev-1"]'
    await page.waitForSelector(row)
    expect(await page.$eval(`${row} .ip`, (td) => td.textContent)).to.match(/^127\.0\.0\.1:\d+/)
    expect(await page.evaluate("sessionStorage.getItem('hypertcp-admin-token')")).to.equal(TOKEN)

    const input = `${row} .send-input`
    await page.$eval(input, (el) => {
      ;(el as unknown as { value: string }).value = ''
    })
    await page.type(input, '{"command":"toggle","device":"relay_1"}')
    await page.click(`${row} .send-button`)
    const frame = await device.frames.take((f) => f.type === Cmd.JSON_MESSAGE, 10_000)
    expect(JSON.parse(frame.text)).to.deep.equal({
      from: 'server',
      payload: { command: 'toggle', device: 'relay_1' },
    })

    const shot = process.env.HTGW_DASHBOARD_SCREENSHOT ?? join(profile, 'dashboard.png')
    await page.screenshot({ path: shot })
    expect(existsSync(shot)).to.equal(true)

    await page.click(`${row} .kick-button`)
    await device.waitClosed(10_000)
    await page.waitForSelector(row, { hidden: true })
    expect(gw.stats().closes.kicked).to.equal(1)
  })
})
