/**
 * Builds against the unchanged third-party sources in ../shared/vendor:
 * ArduinoJson 6 and 7, and the original hyper-tcp header and example. They
 * are read-only (in CI too): they only ever appear on an include path, and
 * every generated wrapper and output goes to a temporary directory removed at
 * exit.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { CXXFLAGS, type Diagnostic, gxx, missingToolchain, repoRoot } from './build.js'

export const VENDOR = path.resolve(repoRoot, '..', 'shared', 'vendor')
export const ORIGINAL = path.join(VENDOR, 'hyper-tcp-ab3c359')
export const BLYNK = path.join(VENDOR, 'blynk-library-1.4.0')
export const ARDUINOJSON = ['6.21.5', '7.2.0'] as const
export type ArduinoJsonVersion = (typeof ARDUINOJSON)[number]

const firmware = path.join(repoRoot, 'firmware')
const shim = path.join(firmware, 'host', 'arduino')

/** Why the vendored sources cannot be used here, or undefined if they can. */
export function missingVendor(): string | undefined {
  const needed = [
    path.join(ORIGINAL, 'HyperTCPProtocol.h'),
    path.join(ORIGINAL, 'HyperTCPExample.ino'),
    ...ARDUINOJSON.map((v) => path.join(arduinoJson(v), 'ArduinoJson.h')),
    path.join(BLYNK, 'linux', 'BlynkSocket.h'),
  ]
  const absent = needed.find((p) => !fs.existsSync(p))
  return absent && `${absent} is missing (../shared/vendor is not next to this checkout)`
}

export function arduinoJson(version: ArduinoJsonVersion): string {
  return path.join(VENDOR, `ArduinoJson-${version}`, 'src')
}

/** Which HyperTCPProtocol.h a program is built with. */
export type Header = 'ours' | 'original'

export interface HostBuild {
  /** A source file, or a wrapper's text (written to the build directory). */
  source: string | { name: string; text: string }
  header: Header
  arduinoJson?: ArduinoJsonVersion
  /** Compile only (-c): for examples, which have no main(). */
  objectOnly?: boolean
  sanitize?: boolean
  /** A 32-bit build (-m32), whose ArduinoJson slots have the size they have on an ESP32/ESP8266. */
  m32?: boolean
  defines?: string[]
}

export interface Built {
  output: string
  diagnostics: Diagnostic[]
}

const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer']

let dir: string | undefined

/** The temporary directory of this run's vendor builds. */
export function buildDir(): string {
  if (!dir) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'hypertcp-vendor-'))
    process.once('exit', () => fs.rmSync(made, { recursive: true, force: true }))
    dir = made
  }
  return dir
}

let serial = 0

/**
 * Builds one host program. Ours is built with the project's warning flags,
 * but without -Werror: the diagnostics come back, so that a test can tell
 * warnings from firmware/ (there must be none) from the vendored code's own.
 * The vendored code is on -isystem paths, as a board's libraries are.
 */
export async function hostBuild(build: HostBuild): Promise<Built> {
  const out = buildDir()
  let source: string
  if (typeof build.source === 'string') {
    source = build.source
  } else {
    source = path.join(out, build.source.name)
    fs.writeFileSync(source, build.source.text)
  }
  const output = path.join(out, `${path.basename(source).replace(/\W/g, '_')}-${build.header}-${++serial}`)
  const flags =
    build.header === 'ours'
      ? CXXFLAGS.filter((f) => f !== '-Werror')
      : ['-std=c++17', '-O1', '-g', `-I${shim}`, `-isystem${ORIGINAL}`]
  const args = [
    ...flags,
    ...(build.arduinoJson ? [`-isystem${arduinoJson(build.arduinoJson)}`] : []),
    // Serial and other Print objects as ArduinoJson's output, as on a board.
    '-DARDUINOJSON_ENABLE_ARDUINO_PRINT=1',
    ...(build.defines ?? []).map((d) => `-D${d}`),
    ...(build.sanitize ? SANITIZE : []),
    ...(build.m32 ? ['-m32'] : []),
    ...(build.objectOnly ? ['-c'] : []),
    source,
    '-o',
    output,
  ]
  return { output, diagnostics: await gxx(args) }
}

let m32: Promise<string | undefined> | undefined

/** Why g++ cannot build 32-bit programs here (-m32 needs g++-multilib), or undefined if it can. */
export function missing32(): Promise<string | undefined> {
  m32 ??= (async () => {
    const source = path.join(buildDir(), 'm32-check.cpp')
    fs.writeFileSync(
      source,
      '#include <string>\nint main() { return std::string("ok").size() == 2 ? 0 : 1; }\n',
    )
    try {
      await gxx(['-m32', source, '-o', path.join(buildDir(), 'm32-check')])
      return undefined
    } catch {
      return 'g++ cannot build 32-bit programs (apt-get install g++-multilib)'
    }
  })()
  return m32
}

/** Diagnostics that point into firmware/ (those of the vendored code are not ours to fix). */
export function fromFirmware(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.filter((d) => d.file.startsWith(firmware + path.sep))
}

/**
 * Copies a sketch next to a wrapper that gives it what the Arduino builder
 * gives a .ino: Arduino.h first, and a prototype for each of its functions
 * (the original example calls functions defined further down).
 */
export function sketchWrapper(ino: string, name: string): { name: string; text: string } {
  const copy = path.join(buildDir(), `${name}.ino`)
  const text = fs.readFileSync(ino, 'utf8')
  fs.writeFileSync(copy, text)
  const prototypes = [...text.matchAll(/^((?:void|bool|int|long|float)\s+\w+\([^)]*\))\s*\{/gm)].map(
    (m) => `${m[1]};`,
  )
  return {
    name: `${name}-main.cpp`,
    text: ['#include <Arduino.h>', ...prototypes, `#include "${name}.ino"`, ''].join('\n'),
  }
}

/**
 * Registers a `before` hook that skips the suite, with the reason printed, when
 * ../shared/vendor is not next to this checkout (as outside the team's CI), or
 * when g++ is missing — which, with HTGW_REQUIRE_TOOLS set (CI sets it), fails
 * the run instead: a tool CI installs must be there.
 */
export function requireVendor(): void {
  before(function () {
    const tool = missingToolchain()
    if (tool && process.env.HTGW_REQUIRE_TOOLS) throw new Error(`required: ${tool}`)
    const missing = tool ?? missingVendor()
    if (!missing) return
    console.log(`    vendored-source tests skipped: ${missing}`)
    this.skip()
  })
}

/** Runs the tasks at most `n` at a time (the machine has two cores). */
export async function atMost<T>(n: number, tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const k = next++
      results[k] = await tasks[k]!()
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker))
  return results
}

/** Everything built per ArduinoJson version, by name. */
export interface VendorPrograms {
  /** firmware/host/device, with the JsonObject callbacks (sanitised). */
  device: Built
  /** firmware/examples/HyperTCPExample, compiled as a board would. */
  example: Built
  /** firmware/host/examples/console. */
  console: Built
  /** The core alone (HYPERTCP_NO_ARDUINOJSON) though ArduinoJson is there. */
  core: Built
  /** The original's example sketch, unchanged, against our header. */
  originalExampleOnOurs: Built
  /** The call probe against our header, and against the original. */
  probeOurs: Built
  probeOriginal: Built
  /** The unchanged original header as a test device (sanitised). */
  original: Built
}

const builds = new Map<ArduinoJsonVersion, Promise<VendorPrograms>>()

/** Builds (once per run and version) every program of the vendor tests. */
export function vendorPrograms(version: ArduinoJsonVersion): Promise<VendorPrograms> {
  let pending = builds.get(version)
  if (!pending) {
    pending = buildAll(version)
    builds.set(version, pending)
  }
  return pending
}

async function buildAll(aj: ArduinoJsonVersion): Promise<VendorPrograms> {
  const host = path.join(firmware, 'host')
  const tag = aj.replace(/\W/g, '_')
  const example = sketchWrapper(
    path.join(firmware, 'examples', 'HyperTCPExample', 'HyperTCPExample.ino'),
    `ours-${tag}`,
  )
  const originalExample = sketchWrapper(path.join(ORIGINAL, 'HyperTCPExample.ino'), `original-${tag}`)
  const probe = path.join(host, 'probe', 'api_probe.cpp')
  const names = [
    'device',
    'original',
    'example',
    'console',
    'core',
    'originalExampleOnOurs',
    'probeOurs',
    'probeOriginal',
  ] as const
  const specs: HostBuild[] = [
    { source: path.join(host, 'device', 'hypertcp_device.cpp'), header: 'ours', sanitize: true },
    { source: path.join(host, 'original', 'original_device.cpp'), header: 'original', sanitize: true },
    { source: example, header: 'ours', objectOnly: true },
    { source: path.join(host, 'examples', 'console', 'console.cpp'), header: 'ours' },
    {
      source: path.join(host, 'examples', 'console', 'console.cpp'),
      header: 'ours',
      defines: ['HYPERTCP_NO_ARDUINOJSON'],
    },
    { source: originalExample, header: 'ours', objectOnly: true },
    { source: probe, header: 'ours' },
    { source: probe, header: 'original' },
  ]
  const built = await atMost(
    2,
    specs.map((spec) => () => hostBuild({ ...spec, arduinoJson: aj })),
  )
  return Object.fromEntries(names.map((name, k) => [name, built[k]!])) as unknown as VendorPrograms
}

let original32: Promise<Built> | undefined

/** The original header as a test device, 32-bit, with ArduinoJson 6: the slots of an ESP32's. */
export function originalDevice32(): Promise<Built> {
  original32 ??= hostBuild({
    source: path.join(firmware, 'host', 'original', 'original_device.cpp'),
    header: 'original',
    arduinoJson: '6.21.5',
    m32: true,
  })
  return original32
}

let blynkBuild: Promise<string> | undefined

/**
 * firmware/host/blynk/blynk_device.cpp against the Blynk library 1.4.0 as published, built the way
 * its linux/Makefile builds its own client (its sources on the include path, the objects here).
 * Returns the program's path; built once per run.
 */
export function blynkDevice(): Promise<string> {
  blynkBuild ??= (async () => {
    const out = path.join(buildDir(), 'blynk')
    fs.mkdirSync(out, { recursive: true })
    const sources = [
      path.join(firmware, 'host', 'blynk', 'blynk_device.cpp'),
      ...['BlynkDebug', 'BlynkHandlers', 'BlynkTimer'].map((f) =>
        path.join(BLYNK, 'src', 'utility', `${f}.cpp`),
      ),
    ]
    const flags = [
      '-std=c++17',
      '-O1',
      '-w',
      '-DLINUX',
      `-I${path.join(BLYNK, 'src')}`,
      `-I${path.join(BLYNK, 'linux')}`,
    ]
    const objects = sources.map((s) => path.join(out, `${path.basename(s, '.cpp')}.o`))
    await atMost(
      2,
      sources.map((s, k) => () => gxx([...flags, '-c', s, '-o', objects[k]!])),
    )
    const program = path.join(out, 'blynk_device')
    await gxx([...objects, '-lpthread', '-o', program])
    return program
  })()
  return blynkBuild
}
