import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'

/** Reads and parses a JSON config file; errors name the file. */
export async function readConfigFile(path: string): Promise<unknown> {
  return readJsonFile(path, `config file ${path}`)
}

/** Reads and parses a JSON file (config, broker users); errors name `source`. */
export function readJsonFile(path: string, source: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError(source, `cannot be read (${code})`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(source, `is not valid JSON: ${(err as Error).message}`)
  }
}
