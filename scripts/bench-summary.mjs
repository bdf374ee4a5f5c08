// Joins the three result files into bench-results/results.json and checks them against the goals
// of BENCHMARKS.md, saying plainly which are reached. Usage: node scripts/bench-summary.mjs DIR
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';

const dir = process.argv[2] ?? 'bench-results';
const read = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const native = read('native.json');
const browser = read('browser.json');
const vault = read('vault.json');
const m = browser.seal.medianMs;
const best = (run, name) => {
  const s = run.scenarios.find((x) => x.scenario === name || x.scenario.startsWith(`${name},`));
  return s.steps.reduce((a, b) => (b.items_per_sec > a.items_per_sec ? b : a));
};
// The vault on SQLite (vault.json), and on PostgreSQL with one node and with two on one database.
const runs = [['SQLite, one node', vault], ['SQLite, one node, KEK in a PKCS#11 token (SoftHSM2)', read('vault-pkcs11.json')], ['PostgreSQL, one node', read('vault-postgres.json')], ['PostgreSQL, two nodes', read('vault-postgres-2.json')]];
const scenarios = ['tokenize, batch of 1', 'tokenize, batch of 6', 'tokenize, batch of 100', 'detokenize'];
const ratio = (run, name) => best(run, name).items_per_sec / run.reference.raw_ecdh_aws_lc_per_sec;
// Against SQLite: tokenize as fractions of each run's own ECDH rate (the machine's speed moves
// between runs), detokenize (no ECDH) in tokens per second.
const vsSqlite = (run, name) => (name === 'detokenize' ? best(run, name).items_per_sec / best(vault, name).items_per_sec : ratio(run, name) / ratio(vault, name));
const tok1 = best(vault, 'tokenize, batch of 1');
const detok = best(vault, 'detokenize');
const ecdh = vault.reference.raw_ecdh_aws_lc_per_sec;
const errors = runs.flatMap(([, r]) => r.scenarios.flatMap((s) => s.steps)).reduce((n, s) => n + s.errors, 0);
// PostgreSQL against SQLite, the weakest scenario (each as a fraction of its own run's ECDH rate).
const pgVsSqlite = Math.min(...runs.filter(([name]) => name.startsWith('PostgreSQL')).flatMap(([, r]) => scenarios.map((n) => vsSqlite(r, n))));
const goals = [
  ['prepared-context seal <= 1/4 of WebCrypto', m.fieldsealPrepared / m.webcryptoHpke, 0.25, (v) => `${v.toFixed(2)}x`],
  ['empty-pool seal <= 3x WebCrypto', m.fieldsealEmptyPool / m.webcryptoHpke, 3, (v) => `${v.toFixed(2)}x`],
  // What every page downloads: fieldseal/react only React pages, with its own budget (size test).
  ['page download <= 64,389 B gzip (no growth)', browser.size.files.filter((f) => f.file !== 'react.js').reduce((n, f) => n + f.gzip, 0), 64389, (v) => `${v.toLocaleString('en-US')} B`],
  ['tokenize, batches of 100 >= 0.6x raw ECDH', ratio(vault, 'tokenize, batch of 100'), 0.6, (v) => `${v.toFixed(2)} of ${ecdh.toFixed(0)}/s`, true],
  ['tokenize, six-envelope requests >= 0.4x raw ECDH', ratio(vault, 'tokenize, batch of 6'), 0.4, (v) => `${v.toFixed(2)}`, true],
  ['tokenize, single envelopes >= 0.3x raw ECDH', tok1.items_per_sec / ecdh, 0.3, (v) => `${v.toFixed(2)}`, true],
  ['zero errors, every run', errors, 0, (v) => `${v} errors`],
  ['detokenize >= 20,000/s', detok.items_per_sec, 20000, (v) => `${v.toFixed(0)}/s`, true],
  ['detokenize p99 < 10 ms', detok.p99_ms, 10, (v) => `${v.toFixed(2)} ms`],
  ['PostgreSQL >= 0.7x SQLite, every scenario', pgVsSqlite, 0.7, (v) => `${v.toFixed(2)}x (weakest)`, true],
].map(([goal, value, limit, fmt, atLeast]) => ({ goal, measured: fmt(value), reached: atLeast ? value >= limit : value <= limit }));
const results = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  native, browser, vault: Object.fromEntries(runs), goals,
};
writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('| goal | measured | reached |');
console.log('|---|---:|---|');
for (const g of goals) console.log(`| ${g.goal} | ${g.measured} | ${g.reached ? 'yes' : 'no'} |`);
console.log('\n| scenario | ' + runs.map(([n]) => n).join(' | ') + ' |');
console.log('|---|' + runs.map(() => '---:').join('|') + '|');
for (const n of scenarios) {
  const cells = runs.map(([, r]) => {
    const b = best(r, n);
    const x = n === 'detokenize' ? '' : ` (${ratio(r, n).toFixed(2)}x)`;
    return `${Math.round(b.items_per_sec).toLocaleString('en-US')}/s${x}, p99 ${b.p99_ms.toFixed(1)} ms`;
  });
  console.log(`| ${n} | ${cells.join(' | ')} |`);
}
console.log('| raw ECDH (reference) | ' + runs.map(([, r]) => `${Math.round(r.reference.raw_ecdh_aws_lc_per_sec).toLocaleString('en-US')}/s`).join(' | ') + ' |');
console.log(`\nresults: ${join(dir, 'results.json')}`);
