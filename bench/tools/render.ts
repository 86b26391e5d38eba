/**
 * Prints the Markdown tables of a results file again (e.g. for the README's Performance section):
 *
 *   node --import tsx bench/tools/render.ts bench/results/latest.json
 */
import { readFileSync } from 'node:fs'
import { type Results, renderTable } from '../lib/report.js'

const file = process.argv[2]
if (file === undefined) {
  process.stderr.write('usage: node --import tsx bench/tools/render.ts RESULTS.json\n')
  process.exit(2)
}
const results = JSON.parse(readFileSync(file, 'utf8')) as Results
process.stdout.write(`${renderTable(results)}\n`)
