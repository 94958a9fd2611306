// Scores cache-tests results the way cache-tests.fyi does (a test whose
// dependency failed is not run) and summarises them by the suite's kinds.
//
//   node summary.mjs DIR            JSON: {server: {kind: {result: count}}, failed: {server: [ids]}}
//   node summary.mjs DIR --markdown the summary table and the list of failures
import fs from 'fs'
import path from 'path'
import { fileURLToPath } from 'url'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.join(here, 'node_modules', 'http-cache-tests')
const suites = (await import(path.join(pkg, 'tests', 'index.mjs'))).default
suites.push((await import(path.join(pkg, 'tests', 'surrogate-control.mjs'))).default)
const { determineTestResult } = await import(path.join(pkg, 'lib', 'display.mjs'))

const dir = process.argv[2]
const servers = ['wharf', 'nginx']
const names = {
  '✅': 'passed', '⛔️': 'failed', '⚠️': 'failed', Y: 'passed', N: 'failed',
  '⚪️': 'not run (a dependency failed)', '🔹': 'setup failed', '↻': 'retried', '⁉️': 'harness failed'
}
const summary = {}
const failed = {}
for (const server of servers) {
  const results = JSON.parse(fs.readFileSync(path.join(dir, `${server}.json`), 'utf8'))
  summary[server] = {}
  failed[server] = []
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (!(test.id in results)) continue
      const kind = test.kind || 'required'
      const symbol = determineTestResult(suites, test.id, results)[2]
      const outcome = names[symbol] || symbol
      summary[server][kind] ||= {}
      summary[server][kind][outcome] = (summary[server][kind][outcome] || 0) + 1
      if (outcome !== 'passed') {
        failed[server].push({ id: test.id, kind, outcome, name: test.name, why: results[test.id] })
      }
    }
  }
}

if (!process.argv.includes('--markdown')) {
  console.log(JSON.stringify({ summary, failed: Object.fromEntries(servers.map(s => [s, failed[s].filter(f => f.outcome === 'failed').map(f => `${f.kind}:${f.id}`)])) }))
} else {
  const kinds = ['required', 'optimal', 'check']
  const outcomes = ['passed', 'failed', 'not run (a dependency failed)', 'setup failed']
  const headings = ['passed (check: yes)', 'failed (check: no)', 'not run (a dependency failed)', 'setup failed']
  console.log('| server | kind | ' + headings.join(' | ') + ' |')
  console.log('|---|---|' + outcomes.map(() => '---:').join('|') + '|')
  for (const server of servers) {
    for (const kind of kinds) {
      const row = summary[server][kind] || {}
      console.log(`| ${server} | ${kind} | ` + outcomes.map(o => row[o] || 0).join(' | ') + ' |')
    }
    const total = kinds.reduce((n, k) => n + ((summary[server][k] || {}).passed || 0), 0)
    console.log(`| ${server} | **all** | **${total}** | | | |`)
  }
  for (const server of servers) {
    console.log(`\n### Not passed by ${server}\n`)
    for (const f of failed[server]) {
      const why = f.why === true ? '' : ` — ${Array.isArray(f.why) ? f.why.join(': ') : f.why}`
      console.log(`- ${f.kind}, ${f.outcome}: \`${f.id}\`${why}`)
    }
  }
}
