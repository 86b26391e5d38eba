import { readFile } from 'node:fs/promises'
import { ConfigError } from '../errors.js'

/** Reads and parses a JSON config file; errors name the file. */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError(`config file ${path}`, `cannot be read (${code})`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${path}`, `is not valid JSON: ${(err as Error).message}`)
  }
}
