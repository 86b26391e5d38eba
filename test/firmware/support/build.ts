/**
 * Compiles the host programs of firmware/ (the library + the Linux Arduino
 * shim) once per mocha run, into a temporary directory removed at exit.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const firmware = path.join(repoRoot, 'firmware')

/** The warning flags the issue asks for, plus stricter ones the library is clean under. */
export const CXXFLAGS = [
  '-std=c++17',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wpedantic',
  '-Wshadow',
  '-Wconversion',
  '-Wsign-conversion',
  '-Woverloaded-virtual',
  '-O1',
  '-g',
  `-I${path.join(firmware, 'src')}`,
  `-I${path.join(firmware, 'host', 'arduino')}`,
]

/** The test device also runs under AddressSanitizer/UBSan: a parser bug becomes a crash, not a pass. */
const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer']

export interface FirmwareBuild {
  dir: string
  /** firmware/host/device/hypertcp_device.cpp */
  device: string
  /** firmware/host/examples/console/console.cpp */
  console: string
}

/** Why the firmware tests cannot run here, or undefined if they can. */
export function missingToolchain(): string | undefined {
  const r = spawnSync('g++', ['--version'], { stdio: 'ignore' })
  return r.status === 0 ? undefined : 'g++ is not installed (apt-get install g++)'
}

let pending: Promise<FirmwareBuild> | undefined

export function buildFirmware(): Promise<FirmwareBuild> {
  pending ??= build()
  return pending
}

async function build(): Promise<FirmwareBuild> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypertcp-fw-'))
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  const out: FirmwareBuild = {
    dir,
    device: path.join(dir, 'hypertcp_device'),
    console: path.join(dir, 'hypertcp_console'),
  }
  // Two g++ at once: the machine has two cores.
  await Promise.all([
    compile(path.join(firmware, 'host', 'device', 'hypertcp_device.cpp'), out.device, SANITIZE),
    compile(path.join(firmware, 'host', 'examples', 'console', 'console.cpp'), out.console, []),
  ])
  return out
}

function compile(source: string, output: string, extra: string[]): Promise<void> {
  return gxx([...CXXFLAGS, ...extra, source, '-o', output]).then(() => undefined)
}

/** One diagnostic g++ printed: where it points, and what it says. */
export interface Diagnostic {
  file: string
  line: number
  kind: 'warning' | 'error'
  text: string
}

const DIAGNOSTIC = /^(.+?):(\d+):\d+: (warning|error): (.*)$/gm

/** Runs g++; resolves with the diagnostics it printed, rejects (with them) if it fails. */
export function gxx(args: string[]): Promise<Diagnostic[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('g++', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d: string) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`g++ ${args.join(' ')}\nexited with ${code}:\n${stderr}`))
        return
      }
      const found: Diagnostic[] = []
      for (const m of stderr.matchAll(DIAGNOSTIC))
        found.push({
          file: path.resolve(m[1]!),
          line: Number(m[2]),
          kind: m[3] as Diagnostic['kind'],
          text: m[4]!,
        })
      resolve(found)
    })
  })
}

/**
 * Registers a `before` hook that builds the host programs (once per run) and returns a getter for
 * them. Without g++ the suite is skipped with the reason printed — unless HTGW_REQUIRE_TOOLS is set
 * (CI sets it), where a missing toolchain fails the run instead.
 */
export function useFirmwareBuild(): () => FirmwareBuild {
  let fw: FirmwareBuild | undefined
  before(async function () {
    const missing = missingToolchain()
    if (missing) {
      if (process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${missing}`)
      console.log(`    firmware tests skipped: ${missing}`)
      this.skip()
    }
    this.timeout(120000)
    fw = await buildFirmware()
  })
  return () => fw!
}
