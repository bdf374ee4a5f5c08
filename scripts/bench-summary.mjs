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
const best = (name) => {
  const s = vault.scenarios.find((x) => x.scenario.startsWith(name));
  return s.steps.reduce((a, b) => (b.items_per_sec > a.items_per_sec ? b : a));
};
const tok1 = best('tokenize, batch of 1');
const tok100 = best('tokenize, batch of 100');
const detok = best('detokenize');
const ecdh = vault.reference.raw_ecdh_aws_lc_per_sec;
const errors = vault.scenarios.flatMap((s) => s.steps).reduce((n, s) => n + s.errors, 0);
const goals = [
  ['prepared-context seal <= 1/4 of WebCrypto', m.fieldsealPrepared / m.webcryptoHpke, 0.25, (v) => `${v.toFixed(2)}x`],
  ['empty-pool seal <= 3x WebCrypto', m.fieldsealEmptyPool / m.webcryptoHpke, 3, (v) => `${v.toFixed(2)}x`],
  ['page download <= 45 KB gzip', browser.size.total.gzip / 1000, 45, (v) => `${v.toFixed(1)} KB`],
  ['tokenize envelopes/s >= 1/2 raw ECDH rate', Math.max(tok1.items_per_sec, tok100.items_per_sec) / ecdh, 0.5, (v) => `${v.toFixed(2)} of ${ecdh.toFixed(0)}/s`, true],
  ['tokenize with zero errors', errors, 0, (v) => `${v} errors`],
  ['detokenize >= 10,000/s', detok.items_per_sec, 10000, (v) => `${v.toFixed(0)}/s`, true],
  ['detokenize p99 < 20 ms', detok.p99_ms, 20, (v) => `${v.toFixed(2)} ms`],
].map(([goal, value, limit, fmt, atLeast]) => ({ goal, measured: fmt(value), reached: atLeast ? value >= limit : value <= limit }));
const results = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  native, browser, vault, goals,
};
writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('| goal | measured | reached |');
console.log('|---|---:|---|');
for (const g of goals) console.log(`| ${g.goal} | ${g.measured} | ${g.reached ? 'yes' : 'no'} |`);
console.log(`\nresults: ${join(dir, 'results.json')}`);
