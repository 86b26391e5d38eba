import { readFileSync } from 'node:fs'

/**
 * The soft open-files limit of this process (Linux: /proc/self/limits), or undefined where it
 * cannot be read. Past it the OS itself drops new connections (libuv accepts and closes them
 * without telling the application), so the gateway warns when maxConnections is above it.
 */
export function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const soft = line?.split(/\s{2,}/)[1]
    const n = Number(soft)
    return Number.isFinite(n) ? n : undefined
  } catch {
    return undefined
  }
}
