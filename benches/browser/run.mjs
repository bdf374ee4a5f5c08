// npm run bench:browser [n] [out.json]: serves the built package and the benchmark pages on
// 127.0.0.1, runs them in Debian's Chromium (headless, playwright-core), prints a table and writes
// the results as JSON. Measures, in one page: seal per field with a prepared context and with an
// empty pool, a WebCrypto reference doing ECDH + HKDF + AES-256-GCM, @hpke/core sealing the same
// value with the same suite, and a whole six-field checkout form; in fresh pages: load() split into
// the wasm (fetch, compile, instantiate) and the key-set fetch; and the size of every file a page
// downloads. Run `npm run build` first.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { launchChromium, root, startServer } from '../../tests/browser/harness.mjs';

const n = Number(process.argv[2] ?? 300);
const out = process.argv[3] ?? join(root, 'bench-results/browser.json');
const loadSamples = 15;
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function sizes() {
  const dist = join(root, 'dist');
  const walk = (d) => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));
  // What a page downloads: the JS modules and the wasm (not the .d.ts files or the SRI manifest).
  // Hosted fields (hosted.js, frame/) are another mode: `npm run bench:hosted` measures them.
  const files = walk(dist).filter((f) => /\.(js|wasm)$/.test(f) && !/\/hosted\.js$|\/frame\//.test(f)).sort();
  const rows = files.map((f) => {
    const data = readFileSync(f);
    return {
      file: relative(dist, f),
      raw: data.length,
      gzip: gzipSync(data, { level: 9 }).length,
      brotli: brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
    };
  });
  const total = rows.reduce((t, r) => ({ raw: t.raw + r.raw, gzip: t.gzip + r.gzip, brotli: t.brotli + r.brotli }), { raw: 0, gzip: 0, brotli: 0 });
  return { files: rows, total };
}

const server = await startServer({ '/bench/': join(root, 'benches/browser'), '/node_modules/': join(root, 'node_modules') });
const browser = await launchChromium();
let result;
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/bench/bench.html?n=${n}`);
  const seal = await page.waitForFunction(() => window.benchResult, null, { timeout: 300_000 }).then((h) => h.jsonValue());
  await page.close();
  const loads = [];
  for (let i = 0; i < loadSamples; i++) {
    const p = await browser.newPage();
    await p.goto(`${server.url}/bench/load.html?i=${i}`);
    loads.push(await p.waitForFunction(() => window.loadResult, null, { timeout: 60_000 }).then((h) => h.jsonValue()));
    await p.close();
  }
  const loadMedian = Object.fromEntries(Object.keys(loads[0]).map((k) => [k, median(loads.map((l) => l[k]))]));
  result = { seal, load: { samples: loadSamples, medianMs: loadMedian }, size: sizes() };
} finally {
  await browser.close();
  await server.close();
}

const m = result.seal.medianMs;
const us = (ms) => `${(ms * 1000).toFixed(0)} µs`;
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
console.log(`\nin ${result.seal.userAgent.match(/Chrome\/[\d.]+/)?.[0]}, median per operation (batches of ${result.seal.batch}, ${n} operations):`);
console.log('| operation | time | vs WebCrypto HPKE |');
console.log('|---|---:|---:|');
for (const [label, v] of [
  ['fieldseal seal, prepared context', m.fieldsealPrepared],
  ['fieldseal seal, empty pool', m.fieldsealEmptyPool],
  ['fieldseal, preparing one context (idle time)', m.fieldsealPrepareOnly],
  ['WebCrypto ECDH + HKDF + AES-256-GCM (reference)', m.webcryptoHpke],
  ['@hpke/core seal, same suite', m.hpkeCoreSeal],
  ['WebCrypto AES-256-GCM alone', m.webcryptoAesGcmOnly],
  [`whole form (${result.seal.formFields} fields), prepared contexts`, m.formPrepared],
  [`whole form (${result.seal.formFields} fields), empty pool`, m.formEmptyPool],
]) console.log(`| ${label} | ${us(v)} | ${ratio(v, m.webcryptoHpke)} |`);
const l = result.load.medianMs;
console.log(`\nload() in a fresh page, median of ${loadSamples}: wasm fetch + compile + instantiate + key-set parse ${l.wasmInstantiateAndParseMs.toFixed(1)} ms; key-set fetch ${l.keysFetchMs.toFixed(1)} ms; importing the JS ${l.importJsMs.toFixed(1)} ms`);
console.log('\n| file | raw | gzip -9 | brotli |');
console.log('|---|---:|---:|---:|');
for (const r of [...result.size.files, { file: 'total', ...result.size.total }]) console.log(`| ${r.file} | ${r.raw} | ${r.gzip} | ${r.brotli} |`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`\nresults written to ${relative(root, out)}`);
