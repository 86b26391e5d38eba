/** `npm run docs:config`: writes docs/CONFIGURATION.md from the settings' declarations. */
import { writeFileSync } from 'node:fs'
import { renderReference } from '../src/config/reference.js'

const path = new URL('../docs/CONFIGURATION.md', import.meta.url)
writeFileSync(path, renderReference())
process.stdout.write(`wrote ${path.pathname}\n`)
