// Collects criterion's estimates for the seal_open benchmark into one JSON file and prints a table.
// Usage: node scripts/bench-native.mjs out.json
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = 'target/criterion';
const ids = ['ecdh', 'prepare', 'seal', 'open'].flatMap((op) => ['p256', 'aws-lc'].map((b) => `${op}/${b}`));
ids.push('seal_prepared');
const results = {};
for (const id of ids) {
  const file = join(dir, id.replace('/', '_'), 'new', 'estimates.json');
  if (!existsSync(file)) throw new Error(`missing criterion result ${file}`);
  const e = JSON.parse(readFileSync(file, 'utf8'));
  results[id] = { median_ns: e.median.point_estimate, mean_ns: e.mean.point_estimate };
}
writeFileSync(process.argv[2], `${JSON.stringify(results, null, 2)}\n`);
const us = (id) => (results[id].median_ns / 1000).toFixed(2);
console.log('| operation | p256 (µs) | AWS-LC (µs) |');
console.log('|---|---:|---:|');
for (const op of ['ecdh', 'prepare', 'seal', 'open']) console.log(`| ${op} | ${us(`${op}/p256`)} | ${us(`${op}/aws-lc`)} |`);
console.log(`| seal with a prepared context | ${us('seal_prepared')} | (same code) |`);
