import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { AdminServer } from '../adapters/admin/server.js'
import { Backoff } from '../adapters/broker-link/backoff.js'
import { openFilesLimit } from '../adapters/fd-limit.js'
import { formatAddress } from '../adapters/listen.js'
import { hashPassword } from '../auth/passwords.js'
import type { GatewayConfig } from '../config/settings.js'
import { maxConnectionsOf } from '../gateway/admission.js'
import { BrokerSide, loopbackFor, startEmbeddedBroker } from '../gateway/broker-side.js'
import { checkDataDir } from '../gateway/store.js'
import type { Logger } from '../log.js'
import { createStats } from '../stats.js'
import { WorkersAdmin } from './admin.js'
import { WORKER_ENV, type WorkerBrief, type WorkerMessage } from './worker.js'

/** How long the primary's stop waits for the broker to take its offline status. */
const STATUS_TIMEOUT_MS = 2000
/** A worker that lived this long has its next restart after the first step again. */
const STABLE_MS = 10_000
/** How long past shutdownTimeout the primary waits for its workers before it kills them. */
const STOP_MARGIN_MS = 3000

/** `workers` as a number of processes: `auto` is one per core. */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting
}

interface Slot {
  readonly index: number
  worker: Worker | undefined
  startedAt: number
  ready: boolean
  /** Whether it has been ready once: one that dies before, at the start, fails the start. */
  served: boolean
  readonly backoff: Backoff
  timer: NodeJS.Timeout | undefined
}

/**
 * The primary of `workers` gateway processes (PROTOCOL decision 37): it runs the embedded broker
 * (standalone mode) that the workers reach over loopback MQTT, forks the workers (node:cluster
 * spreads the device connections across them), restarts one that dies (with backoff), forwards
 * SIGHUP, and stops them all within shutdownTimeout. Resolves with the exit code once stopped.
 */
export async function runPrimary(config: GatewayConfig, logger: Logger, count: number): Promise<number> {
  explainLimits(config, count, logger)
  checkDataDir(config, count, logger)
  // Frozen by node:cluster at the first fork. Round robin hands every connection over IPC, one at a
  // time per worker, waiting for its answer: under load a few hundred a second, and what waits past
  // the primary's open-files limit is accepted and closed (README "Workers").
  cluster.schedulingPolicy = config.workerBalancing === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR
  const brokerSettings: Record<string, unknown> = {}
  let closeBroker = async (): Promise<void> => {}
  if (config.mqttUrl === null) {
    // The workers log in to the primary's broker as gateways, with a password made for this run.
    const password = randomBytes(18).toString('base64url')
    const internal = {
      username: 'hypertcp-worker',
      passwordHash: await hashPassword(password),
      role: 'gateway' as const,
    }
    const { embedded } = await startEmbeddedBroker(
      { ...config, brokerUsers: [...config.brokerUsers, internal] },
      logger,
    )
    closeBroker = () => embedded.close()
    brokerSettings.mqttUrl = [`mqtt://${formatAddress(loopbackFor(embedded.tcp.address), embedded.tcp.port)}`]
    brokerSettings.mqttUsername = internal.username
    brokerSettings.mqttPassword = password
    brokerSettings.mqttProtocolVersion = '3.1.1' // what Aedes speaks
  }
  // [HT-5.4] The gateway's own status, published as one gateway does: online from the primary's own
  // broker connection, offline (shutdown) once the workers stopped, else its last will.
  const status = await BrokerSide.open(
    { ...config, ...brokerSettings, mqttConnections: 1 } as GatewayConfig,
    logger,
    createStats(),
  )
  status.onConnect(() => {})
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index,
    worker: undefined,
    startedAt: 0,
    ready: false,
    served: false,
    backoff: new Backoff(500, 30_000),
    timer: undefined,
  }))
  let stopping = false
  let announced = false
  let startFailure: number | undefined
  let failStart: (status: number) => void = () => {}
  const admin = new WorkersAdmin(
    config.gatewayId,
    config.maxDownlinkSize,
    () => new Map(slots.map((s) => [s.index + 1, s.ready ? s.worker : undefined])),
  )
  const server =
    config.adminPort === 'off'
      ? undefined
      : await AdminServer.start({
          host: config.adminHost,
          port: config.adminPort,
          token: config.adminToken,
          backend: admin,
          metrics: admin.metrics,
          logger,
        })

  const brief = (index: number): WorkerBrief => {
    const name = `w${index + 1}`
    return {
      index,
      count,
      settings: {
        ...brokerSettings,
        gatewayId: `${config.gatewayId}-${name}`,
        adminPort: 'off',
        workers: 1,
        // Each worker's connections their own client ids, as their gateway ids are (a broker would
        // otherwise close one worker's connection at each login of another's).
        ...(config.mqttClientId === null ? {} : { mqttClientId: `${config.mqttClientId}-${name}` }),
        ...(config.dataDir === 'off' ? {} : { dataDir: path.join(config.dataDir, name) }),
      },
    }
  }

  const fork = (slot: Slot): void => {
    const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(brief(slot.index)) })
    slot.worker = worker
    slot.startedAt = Date.now()
    slot.ready = false
    logger.info(`worker ${slot.index + 1} started`, { pid: worker.process.pid })
    admin.listen(worker)
    worker.on('message', (message: WorkerMessage) => {
      if (message?.type !== 'hypertcp:ready') return
      slot.ready = true
      slot.served = true
      logger.info(`worker ${slot.index + 1} ready`, { pid: worker.process.pid })
      if (!announced && slots.every((s) => s.ready)) {
        announced = true
        logger.info('gateway started', {
          gateway: config.gatewayId,
          workers: count,
          balancing: config.workerBalancing,
        })
      }
    })
    worker.on('exit', (code, signal) => {
      slot.worker = undefined
      slot.ready = false
      if (stopping) return
      // Dead before it ever served (its configuration, a port taken): as a gateway's start fails.
      if (!slot.served && !announced) return failStart(code ?? 1)
      if (Date.now() - slot.startedAt > STABLE_MS) slot.backoff.reset()
      const delay = slot.backoff.next()
      logger.error(`worker ${slot.index + 1} exited: restarting it`, {
        pid: worker.process.pid,
        code,
        signal,
        restartInMs: Math.round(delay),
      })
      slot.timer = setTimeout(() => fork(slot), delay)
    })
  }
  for (const slot of slots) fork(slot)

  process.on('SIGHUP', () => {
    logger.info('SIGHUP received: reloading every worker')
    for (const s of slots) s.worker?.process.kill('SIGHUP')
  })

  const code = await new Promise<number>((resolve) => {
    failStart = (status) => {
      logger.error('a worker could not start: stopping the others', { exitCode: status })
      stop('SIGTERM')
      startFailure = status
    }
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn(`${signal} again: killing the workers`)
        for (const s of slots) s.worker?.process.kill('SIGKILL')
        return
      }
      stopping = true
      logger.info(`${signal} received: stopping the workers`)
      for (const s of slots) clearTimeout(s.timer)
      const exits = slots.map(
        (s) =>
          new Promise<number>((done) => {
            const w = s.worker
            if (w === undefined || w.isDead()) return done(0)
            w.once('exit', (c) => done(c ?? 1))
            w.process.kill('SIGTERM')
          }),
      )
      const deadline = setTimeout(
        () => {
          logger.error('workers still running past shutdownTimeout: killing them')
          for (const s of slots) s.worker?.process.kill('SIGKILL')
        },
        (config.mqttConnectTimeout + config.shutdownTimeout) * 1000 + STOP_MARGIN_MS,
      )
      Promise.all(exits).then((codes) => {
        clearTimeout(deadline)
        resolve(startFailure ?? (codes.every((c) => c === 0) ? 0 : 1))
      })
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  await server?.close()
  await status.announceStop(STATUS_TIMEOUT_MS)
  await status.close(STATUS_TIMEOUT_MS)
  await closeBroker()
  logger.info('stopped', { workers: count })
  return code
}

/**
 * Each worker has the open-files limit of one process, and the host one of its own for all of them:
 * says what the workers can hold, and warns when the host cannot give them that many.
 */
function explainLimits(config: GatewayConfig, count: number, logger: Logger): void {
  const perProcess = openFilesLimit()
  const hostMax = readHostFileMax()
  // What each worker's admission allows: a worker reaches its broker over MQTT, none in-process.
  const each = maxConnectionsOf(config.maxConnections, perProcess, 0)
  logger.info(`starting ${count} workers`, {
    devicesPerWorker: each,
    devicesInAll: each * count,
    ...(hostMax === undefined ? {} : { hostOpenFiles: hostMax }),
  })
  if (perProcess !== undefined && hostMax !== undefined && perProcess * count > hostMax) {
    logger.warn(
      `${count} workers may each open ${perProcess} files, more than the host allows in all (fs.file-max ${hostMax}): ` +
        'connections past it will be refused; raise fs.file-max or run fewer workers',
    )
  }
}

function readHostFileMax(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/sys/fs/file-max', 'utf8').trim())
    return Number.isFinite(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}
