import cluster from 'node:cluster'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { createLogger } from './adapters/logger.js'
import { hashPassword } from './auth/passwords.js'
import { serveAdmin } from './cluster/admin.js'
import { runPrimary, workerCount } from './cluster/primary.js'
import { announceReady, workerBrief, workerLayer } from './cluster/worker.js'
import { readConfigFile } from './config/load.js'
import { redactConfig } from './config/redact.js'
import { type ConfigLayer, envLayer, kebab, resolveConfig } from './config/resolve.js'
import { type GatewayConfig, SETTINGS, type Setting } from './config/settings.js'
import { ConfigError, GatewayError } from './errors.js'
import { createGateway, type Gateway } from './gateway/gateway.js'
import { startHeapPolicy } from './heap-policy.js'

/** How long past shutdownTimeout a stop may run before the process exits regardless. */
const HARD_STOP_MARGIN_MS = 3000

/**
 * The command line: `hypertcp-gateway --config FILE [--flag value …]`. Every scalar setting has a
 * flag (`mqttUrl` → `--mqtt-url`); flags override HYPERTCP_* env, which overrides the file.
 * The only place that exits the process.
 */
export async function main(argv: string[]): Promise<void> {
  const parser = yargs(argv)
    .scriptName('hypertcp-gateway')
    .usage(
      '$0 [--config FILE] [options]\n\nBridges HyperTCP devices to MQTT. Without --mqtt-url it runs its own (embedded Aedes) broker.\nSettings: defaults < config file < HYPERTCP_* environment < flags.',
    )
    .option('config', {
      alias: 'c',
      type: 'string',
      describe: 'JSON config file (settings and the device registry)',
    })
    .option('print-config', {
      type: 'boolean',
      describe: 'print the resolved configuration (secrets hidden) and exit',
    })
    .option('hash-password', {
      type: 'boolean',
      describe: "read a broker user's password on stdin, print its passwordHash and exit",
    })
    .strict()
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .epilogue(
      'Docs: README.md (the manual), docs/CONFIGURATION.md (every setting), docs/PROTOCOL.md (wire contract).',
    )
  for (const [key, spec] of Object.entries(SETTINGS)) {
    parser.option(kebab(key), { type: 'string', describe: spec.doc, group: 'Settings:', requiresArg: true })
  }
  const args = await parser.parseAsync()
  if (args.hashPassword) {
    const password = (await readStdin()).replace(/\r?\n$/, '')
    if (password.length === 0) return fail(new ConfigError('--hash-password', 'give the password on stdin'))
    process.stdout.write(`${await hashPassword(password)}\n`)
    return
  }

  // One of a primary's workers: the primary's word on its gateway id, broker link and data wins.
  const brief = workerBrief(process.env)
  // Reads every source again: at start-up, and on SIGHUP.
  const load = async (): Promise<{ config: GatewayConfig; unknownEnv: string[] }> => {
    const layers: ConfigLayer[] = []
    if (typeof args.config === 'string') {
      layers.push({ source: `config file ${args.config}`, values: await readConfigFile(args.config) })
    }
    const env = envLayer(process.env)
    layers.push(env.layer)
    const flags: Record<string, unknown> = {}
    const names: Record<string, string> = {}
    for (const [key, spec] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
      const raw = (args as Record<string, unknown>)[key]
      if (typeof raw !== 'string') continue
      flags[key] = spec.kind.fromText(raw.trim())
      names[key] = `--${kebab(key)}`
    }
    layers.push({ source: 'command line', values: flags, names })
    if (brief !== undefined) layers.push(workerLayer(brief))
    return { config: resolveConfig(layers), unknownEnv: env.unknown }
  }
  let config: GatewayConfig
  let unknownEnv: string[]
  try {
    ;({ config, unknownEnv } = await load())
  } catch (err) {
    return fail(err)
  }

  if (args.printConfig) {
    const shown = redactConfig(config)
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`)
    return
  }

  const base = createLogger(config.logLevel, config.logFormat)
  const logger = brief === undefined ? base : base.child({ worker: brief.index + 1 })
  for (const name of unknownEnv) logger.warn(`ignoring unknown environment variable ${name}`)
  process.on('uncaughtException', (err) => {
    logger.error('fatal: uncaught exception', { error: err.stack ?? String(err) })
    process.exit(70)
  })
  process.on('unhandledRejection', (err) => {
    logger.error('fatal: unhandled rejection', {
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    })
    process.exit(70)
  })

  const workers = brief === undefined ? workerCount(config.workers) : 1
  if (workers > 1 && cluster.isPrimary) {
    // The primary: the embedded broker and the workers; the devices are the workers'.
    let status: number
    try {
      status = await runPrimary(config, logger, workers)
    } catch (err) {
      return fail(err)
    }
    process.exit(status)
  }

  let gateway: Gateway | undefined
  startHeapPolicy(
    process.execArgv,
    () => gateway?.stats().open ?? 0,
    (message) => logger.debug(message),
  )
  // Signals are taken from the start: one during start-up stops the gateway once it is up.
  let signals = 0
  let stopAsked: NodeJS.Signals | undefined
  const stop = (signal: NodeJS.Signals) => {
    // A worker's stop is its primary's to hurry (SIGKILL); a service manager signalling the whole
    // group reaches it twice (the primary passes the signal on).
    if (brief !== undefined && signals > 0) return
    if (++signals > 1) {
      logger.warn(`${signal} again: exiting without a clean shutdown`)
      process.exit(1)
    }
    logger.info(`${signal} received`)
    // The stop keeps to shutdownTimeout by itself; this is the backstop if something hangs anyway.
    setTimeout(
      () => {
        logger.error('shutdown did not finish within shutdownTimeout: exiting')
        process.exit(1)
      },
      (config.mqttConnectTimeout + config.shutdownTimeout) * 1000 + HARD_STOP_MARGIN_MS,
    ).unref()
    if (gateway === undefined) {
      stopAsked = signal
      return
    }
    gateway.close().then(
      ({ acknowledged }) => process.exit(acknowledged ? 0 : 1),
      (err: unknown) => {
        logger.error('shutdown failed', { error: String(err) })
        process.exit(1)
      },
    )
  }
  // A worker stops when its primary says (SIGTERM); a terminal's Ctrl-C reaches the primary too.
  process.on('SIGINT', brief === undefined ? stop : () => {})
  process.on('SIGTERM', stop)
  try {
    const share = brief === undefined ? {} : { share: { index: brief.index, count: brief.count } }
    gateway = await createGateway({ ...config, logger, ...share })
  } catch (err) {
    return fail(err)
  }
  if (brief !== undefined) {
    serveAdmin(gateway.adminBackend())
    announceReady()
  }
  const running = gateway
  if (stopAsked !== undefined) {
    signals = 0
    stop(stopAsked)
  }
  // Reload the device registry and the TLS certificates without dropping connected devices.
  process.on('SIGHUP', () => {
    logger.info('SIGHUP received: reloading')
    load().then(
      ({ config: next }) => running.reload(next),
      (err: unknown) =>
        logger.error('reload failed; keeping the running configuration', {
          error: String((err as Error).message ?? err),
        }),
    )
  })
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function fail(err: unknown): never {
  if (err instanceof GatewayError) {
    const what = err.code === 'HT_ERR_CONFIG' ? 'invalid configuration: ' : ''
    process.stderr.write(`hypertcp-gateway: ${what}${err.message}\n`)
    process.exit(err.code === 'HT_ERR_CONFIG' ? 2 : 1)
  }
  process.stderr.write(
    `hypertcp-gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  )
  process.exit(1)
}

await main(hideBin(process.argv))
