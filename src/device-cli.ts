import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { Cmd, cmdName, HEADER_SIZE, Status, statusName } from './protocol/constants.js'
import { FrameDecoder } from './protocol/decoder.js'
import { encodeFrame, encodeResponse, nextMsgId, writeHeader } from './protocol/encoder.js'

/** Command types HyperTCP defines; anything else is shown as raw bytes. */
const KNOWN = new Set<number>(Object.values(Cmd))

/**
 * `hypertcp-device`: a console HyperTCP device for trying the gateway by hand. It logs in like the
 * original Arduino header, answers PINGs and messages the way it does, prints every frame it
 * receives, and sends what you type:
 *
 *   {"temperature": 25.6}     JSON_MESSAGE to "server" (published on hypertcp/<id>/up)
 *   @dev-2 {"hello": 1}       JSON_MESSAGE to another device
 *   * {"notice": "hi"}        BROADCAST
 *   ping                      PING
 *   #100 00ff10               a frame of custom command type 100 with these bytes ([HT-5.6])
 */
async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('hypertcp-device')
    .usage(
      '$0 --token TOKEN [options]\n\nA console HyperTCP device. Type JSON to send it to the server; see README.md.',
    )
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'gateway host' })
    .option('port', { type: 'number', default: 8080, describe: 'gateway HyperTCP port' })
    .option('token', {
      type: 'string',
      demandOption: true,
      describe: 'device token (see config/gateway.example.json)',
    })
    .option('device-id', { type: 'string', describe: 'claim this id with the JSON login form' })
    .option('hex', { type: 'boolean', default: false, describe: 'also print every frame as hex' })
    .strict()
    .help()
    .parseAsync()

  let lastId = 0
  let loggedIn = false
  /** Lines typed before the login reply: sent once logged in, as the original waits for it. */
  const queued: string[] = []
  const id = () => {
    lastId = nextMsgId(lastId)
    return lastId
  }
  const socket = connect(args.port, args.host)
  const out = (line: string) => process.stdout.write(`${line}\n`)
  process.stdout.on('error', () => process.exit(0)) // e.g. piped into `head`
  const send = (type: number, msgId: number, body?: string | Buffer) => {
    const frame = encodeFrame(type, msgId, typeof body === 'string' ? Buffer.from(body) : body)
    socket.write(frame)
    const shown =
      body === undefined ? '' : typeof body === 'string' ? ` ${body}` : ` hex ${body.toString('hex')}`
    out(`→ ${cmdName(type)} #${msgId}${shown}${args.hex ? `\n  ${frame.toString('hex')}` : ''}`)
  }

  const decoder = new FrameDecoder(
    65535,
    (type, msgId, body, length) => {
      const text = body.toString()
      const header = Buffer.alloc(HEADER_SIZE)
      writeHeader(header, 0, type, msgId, length) // as received: a RESPONSE's length may be a status
      const hex = args.hex ? `\n  ${header.toString('hex')}${body.toString('hex')}` : ''
      if (type === Cmd.RESPONSE) {
        const status = body.length === 1 ? body[0]! : length
        const what =
          body.length === 1
            ? `login ${status === Status.SUCCESS ? 'ok' : `refused: ${statusName(status)}`}`
            : length === 0
              ? 'ok'
              : statusName(length)
        out(`← RESPONSE #${msgId} ${what}${hex}`)
        if (body.length === 1) {
          if (status !== Status.SUCCESS) return undefined
          loggedIn = true // [HT-2.3] its own ids start at 1 after login
          for (const line of queued.splice(0)) onLine(line)
        }
        return undefined
      }
      if (!KNOWN.has(type)) {
        // [HT-5.6] A custom command type: raw bytes, not acknowledged (as the firmware library).
        out(`← ${cmdName(type)} #${msgId} hex ${body.toString('hex')}`)
        return undefined
      }
      out(`← ${cmdName(type)} #${msgId}${text ? ` ${text}` : ''}${hex}`)
      if (type === Cmd.PING || type === Cmd.JSON_MESSAGE || type === Cmd.BROADCAST)
        socket.write(encodeResponse(msgId, 0))
      return undefined
    },
    (err) => out(`! ${err.message}`),
    'device',
  )

  socket.on('connect', () => {
    out(`connected to ${args.host}:${args.port}`)
    decoder.expectLoginReply = true
    const login =
      args.deviceId === undefined
        ? args.token
        : JSON.stringify({ token: args.token, device_id: args.deviceId })
    send(Cmd.LOGIN, 1, login)
  })
  socket.on('data', (chunk: Buffer) => decoder.push(chunk))
  socket.on('error', (err) => out(`! ${err.message}`))
  socket.on('close', () => {
    out('connection closed')
    process.exit(0)
  })

  function onLine(raw: string): void {
    const line = raw.trim()
    if (line === '') return
    if (!loggedIn) {
      queued.push(line)
      return
    }
    if (line === 'ping') return send(Cmd.PING, id())
    if (line.startsWith('#')) return sendCustom(line)
    let type: number = Cmd.JSON_MESSAGE
    let target = 'server'
    let json = line
    if (line.startsWith('*')) {
      type = Cmd.BROADCAST
      target = 'broadcast'
      json = line.slice(1).trim()
    } else if (line.startsWith('@')) {
      const space = line.indexOf(' ')
      target = line.slice(1, space < 0 ? undefined : space)
      json = space < 0 ? '{}' : line.slice(space + 1).trim()
    }
    try {
      JSON.parse(json)
    } catch {
      out('! not JSON; type e.g. {"temperature": 25.6}')
      return
    }
    send(type, id(), `{"targetId":${JSON.stringify(target)},"payload":${json}}`)
  }
  /** `#100 00ff10`: a frame of that type with those bytes (spaces between bytes allowed). */
  function sendCustom(line: string): void {
    const m = /^#(\d{1,3})((?:\s*[0-9a-fA-F]{2})*)\s*$/.exec(line)
    const type = Number(m?.[1])
    if (!m || type > 255) {
      out('! a custom frame is #TYPE HEX, e.g. #100 00ff10 (type 0-255, whole bytes)')
      return
    }
    send(type, id(), Buffer.from(m[2]!.replace(/\s/g, ''), 'hex'))
  }
  const rl = createInterface({ input: process.stdin })
  rl.on('line', onLine)
  rl.on('close', () => {
    // Piped input: let what was queued go out first.
    if (queued.length === 0) socket.end()
    else setTimeout(() => socket.end(), 1000)
  })
}

await main()
