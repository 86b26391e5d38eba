// Ramps N devices into a cli gateway (debug log) and prints its heap-policy lines.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { encodeFrame } from '../src/protocol/encoder.js'
const N = Number(process.argv[2] ?? 10000)
const devices = Array.from({ length: N }, (_, i) => ({ id: `d${i}`, token: `t${i}` }))
writeFileSync('/tmp/gcp.json', JSON.stringify({ devices }))
const port = 18000 + Math.floor(Math.random() * 1000)
const gw = spawn(process.execPath, ['dist/cli.js', '--config', '/tmp/gcp.json', '--host', '127.0.0.1', '--port', String(port), '--broker-port', '0', '--broker-ws-port', 'off', '--log-level', 'debug', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] })
let buf = ''
gw.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); if (l.includes('heap:')) console.log(l) } })
await new Promise((r) => setTimeout(r, 1500))
const socks: net.Socket[] = []
let ok = 0
const t0 = Date.now()
for (let b = 0; b < N; b += 200) {
  await Promise.all(Array.from({ length: Math.min(200, N - b) }, (_, k) => new Promise<void>((res) => {
    const i = b + k
    const s = net.connect(port, '127.0.0.1', () => s.write(encodeFrame(29, 1, Buffer.from(`t${i}`))))
    s.once('data', () => { ok++; res() })
    s.on('error', () => res())
    socks.push(s)
  })))
}
console.log(`${ok} logged in in ${Date.now() - t0} ms`)
await new Promise((r) => setTimeout(r, 5000))
gw.kill('SIGKILL'); for (const s of socks) s.destroy(); process.exit(0)
