import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { round } from './stats.js'

/**
 * Every process the benchmark starts is tracked here and killed when the orchestrator exits,
 * whatever the reason (normal end, error, Ctrl-C): no gateway, broker or generator is left behind.
 */
const children = new Set<ChildProcess>()
let installed = false

export function track(child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
  if (installed) return
  installed = true
  process.once('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

export function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
}

/** CPU time, resident memory and syscall counters of a process, from /proc. */
export interface ProcSample {
  /** user + system CPU time, µs. */
  cpuUs: number
  rssKiB: number
  hwmKiB: number
  /** read-type and write-type syscalls (`/proc/PID/io` syscr/syscw: read, readv, write, writev…). */
  syscr: number
  syscw: number
}

const TICK_US = 1_000_000 / 100 // USER_HZ is 100 on Linux

export function sampleProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  const status = readFileSync(`/proc/${pid}/status`, 'latin1')
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN)
  let syscr = Number.NaN
  let syscw = Number.NaN
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'latin1')
    syscr = Number(/^syscr:\s+(\d+)/m.exec(io)?.[1])
    syscw = Number(/^syscw:\s+(\d+)/m.exec(io)?.[1])
  } catch {
    // /proc/PID/io may be unreadable in some sandboxes; the figures are then left out.
  }
  return { cpuUs: (utime + stime) * TICK_US, rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM'), syscr, syscw }
}

/**
 * A process and its descendants together (a gateway with `workers`: the primary and its workers;
 * any other process: itself). A descendant that exits meanwhile is left out. CPU time is what the
 * live processes used: a worker that died takes its share with it.
 */
export function sampleTree(pid: number): ProcSample {
  const total = sampleProc(pid)
  for (const child of childrenOf(pid)) {
    try {
      addSample(total, sampleTree(child))
    } catch {
      // gone between the listing and the read
    }
  }
  return total
}

function addSample(total: ProcSample, s: ProcSample): void {
  total.cpuUs += s.cpuUs
  total.rssKiB += s.rssKiB
  total.hwmKiB += s.hwmKiB
  total.syscr += s.syscr
  total.syscw += s.syscw
}

function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim()
    return text === '' ? [] : text.split(' ').map(Number)
  } catch {
    return []
  }
}

/**
 * Connections this network namespace's listeners dropped because their accept queue was full
 * (`TcpExt ListenOverflows`, /proc/net/netstat), NaN where unreadable. A dropped handshake waits for
 * the kernel's retransmission (1 s, then 2 …): a ramp with overflows measures that timer.
 */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'latin1').split('\n')
    const i = lines.findIndex((l) => l.startsWith('TcpExt:'))
    const keys = lines[i]!.split(' ')
    return Number(lines[i + 1]!.split(' ')[keys.indexOf('ListenOverflows')])
  } catch {
    return Number.NaN
  }
}

/** `after - before` for the counters; RSS as of `after`. */
export function procDelta(before: ProcSample, after: ProcSample): ProcSample {
  return {
    cpuUs: after.cpuUs - before.cpuUs,
    rssKiB: after.rssKiB,
    hwmKiB: after.hwmKiB,
    syscr: after.syscr - before.syscr,
    syscw: after.syscw - before.syscw,
  }
}

/** The summed samples of each role's processes (e.g. `{ gateway: [pid], generators: [pid, pid] }`). */
export function sampleRoles(roles: Record<string, readonly number[]>): Record<string, ProcSample> {
  const out: Record<string, ProcSample> = {}
  for (const [role, pids] of Object.entries(roles)) {
    const total: ProcSample = { cpuUs: 0, rssKiB: 0, hwmKiB: 0, syscr: 0, syscw: 0 }
    for (const pid of pids) addSample(total, sampleTree(pid))
    out[role] = total
  }
  return out
}

/** Each role's CPU between two {@link sampleRoles} snapshots, as % of one core over `elapsedUs`. */
export function cpuPercent(
  before: Record<string, ProcSample>,
  after: Record<string, ProcSample>,
  elapsedUs: number,
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [role, us] of cpuUsByRole(before, after)) out[role] = round((us / elapsedUs) * 100, 3)
  return out
}

/**
 * Each role's CPU µs per unit of work (a login, a message) between two {@link sampleRoles}
 * snapshots, and their sum as `all`.
 */
export function cpuUsPer(
  before: Record<string, ProcSample>,
  after: Record<string, ProcSample>,
  units: number,
): Record<string, number> {
  const out: Record<string, number> = {}
  let all = 0
  for (const [role, us] of cpuUsByRole(before, after)) {
    all += us
    out[role] = round(us / Math.max(1, units), 3)
  }
  out.all = round(all / Math.max(1, units), 3)
  return out
}

/** Each role's CPU µs between two {@link sampleRoles} snapshots. */
function cpuUsByRole(
  before: Record<string, ProcSample>,
  after: Record<string, ProcSample>,
): [role: string, us: number][] {
  return Object.keys(before).map((role) => [role, after[role]!.cpuUs - before[role]!.cpuUs])
}

/**
 * Waits until `pids` together use less than `maxPct` % of one core over `windowMs`, or
 * `timeoutMs` has passed; returns how long it waited (ms). A saturation run leaves the broker
 * busy after its last message arrived (Mosquitto reads the subscriber's backlog of PUBACKs one
 * per event-loop turn: about 3 s at 100 % of a core after a raw QoS 1 run), and a run started
 * then would measure that too.
 */
export async function waitQuiet(
  pids: readonly number[],
  { maxPct = 20, windowMs = 300, timeoutMs = 15_000 } = {},
): Promise<number> {
  const cpu = () => pids.reduce((total, pid) => total + sampleProc(pid).cpuUs, 0)
  const start = Date.now()
  for (;;) {
    const before = cpu()
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    const pct = ((cpu() - before) / (windowMs * 1000)) * 100
    if (pct < maxPct || Date.now() - start >= timeoutMs) return Date.now() - start - windowMs
  }
}
