import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { mosquittoVersion } from '../../test/helpers/mosquitto.js'
import { openFilesLimit } from './options.js'

export interface Machine {
  cpu_model: string
  cores: number
  node: string
  open_files_limit: number
  kernel: string
  memory_gib: number
  mosquitto: string | null
  /** Kernel settings that bound connection counts and reconnection storms. */
  ephemeral_ports: string
  somaxconn: number
  tcp_tw_reuse: number
  /** 1-minute load average when the run started (other work on a shared machine shows here). */
  loadavg_at_start: number
}

function read(path: string): string {
  try {
    return readFileSync(path, 'latin1').trim()
  } catch {
    return ''
  }
}

export function machineInfo(): Machine {
  const cpuinfo = read('/proc/cpuinfo')
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown'
  return {
    cpu_model: model.trim(),
    cores: availableParallelism(),
    node: process.version,
    open_files_limit: openFilesLimit(),
    kernel: release(),
    memory_gib: Math.round(totalmem() / 2 ** 30),
    mosquitto: mosquittoVersion() ?? null,
    ephemeral_ports: read('/proc/sys/net/ipv4/ip_local_port_range').replace(/\s+/, '-'),
    somaxconn: Number(read('/proc/sys/net/core/somaxconn')),
    tcp_tw_reuse: Number(read('/proc/sys/net/ipv4/tcp_tw_reuse')),
    loadavg_at_start: loadavg()[0]!,
  }
}

/** The commit the gateway was built from, `+dirty` if src/ has uncommitted changes. */
export function gitDescribe(cwd: string): string | null {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, stdio: 'pipe' })
      .toString()
      .trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd,
      stdio: 'pipe',
    }).toString()
    return dirty.trim() ? `${commit}+dirty` : commit
  } catch {
    return null
  }
}
