// Summarizes scripts/bench-vault-compare.sh: for each scenario, the peak items/s (over the
// concurrency levels) of every run of each binary, their means, and the change after vs before.
//   node scripts/bench-vault-compare.mjs DIR REV
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, rev = 'before'] = process.argv.slice(2);
const runs = { before: [], after: [] };
for (const name of readdirSync(dir).sort()) {
  const m = /^vault-(before|after)-(\d+)\.json$/.exec(name);
  if (m) runs[m[1]].push(JSON.parse(readFileSync(join(dir, name), 'utf8')));
}
if (!runs.before.length || runs.before.length !== runs.after.length) {
  throw new Error(`expected as many runs before as after in ${dir}`);
}
const peak = (run, scenario) => {
  const s = run.scenarios.find((x) => x.scenario === scenario);
  return Math.max(...s.steps.map((step) => step.items_per_sec));
};
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
console.log(`\n| scenario | ${rev} (peak per run) | mean | this tree (peak per run) | mean | change |`);
console.log('|---|---:|---:|---:|---:|---:|');
for (const { scenario } of runs.before[0].scenarios) {
  const before = runs.before.map((r) => peak(r, scenario));
  const after = runs.after.map((r) => peak(r, scenario));
  const change = ((mean(after) / mean(before)) - 1) * 100;
  console.log(`| ${scenario} | ${before.map(fmt).join(', ')} | ${fmt(mean(before))} | ` +
    `${after.map(fmt).join(', ')} | ${fmt(mean(after))} | ${change >= 0 ? '+' : ''}${change.toFixed(1)} % |`);
}
const ecdh = [...runs.before, ...runs.after].map((r) => r.reference.raw_ecdh_aws_lc_per_sec);
console.log(`\nreference: raw P-256 ECDH (AWS-LC) ${fmt(Math.min(...ecdh))} to ${fmt(Math.max(...ecdh))}/s across the runs`);
