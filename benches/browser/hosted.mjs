// npm run bench:hosted [n] [out.json]: hosted fields in Debian's Chromium (headless,
// playwright-core), with the real vault binary serving the frames on its own origin and the
// merchant page on another. Measures the time from mountFields() to an interactive card number
// field and to all three fields ready, with an empty HTTP cache (the browser's cache cleared before each run)
// and with a warm one (the same page loaded again), and what one frame downloads from the vault
// (the bytes the browser received, and the same files compressed as a server could send them).
// Run `npm run build` and `cargo build -p fieldseal-vault` first (the script builds the vault).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildVault, startVault } from '../../demo/vault.mjs';
import { launchChromium, root, startServer } from '../../tests/browser/harness.mjs';

const n = Number(process.argv[2] ?? 15);
const out = process.argv[3] ?? join(root, 'bench-results/hosted.json');
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer({ '/bench/': join(root, 'benches/browser') });
const dataDir = mkdtempSync(join(tmpdir(), 'fieldseal-bench-hosted-'));
const vault = await startVault({ bin: buildVault({ quiet: true }), dataDir, fieldsOrigins: [server.url] });
const vaultUrl = vault.url.replace('127.0.0.1', 'localhost');
const url = `${server.url}/bench/hosted.html?vault=${encodeURIComponent(vaultUrl)}`;
const browser = await launchChromium();
let result;
try {
  const measure = async (page) => {
    await page.waitForFunction(() => window.result, null, { timeout: 30_000 });
    const r = await page.evaluate(() => window.result);
    if (r.error) throw new Error(`mountFields failed: ${r.error}`);
    return r;
  };
  const cold = [];
  const warm = [];
  let download = null;
  for (let i = 0; i < n; i++) {
    // An empty HTTP cache for the first load of each run.
    const page = await browser.newPage();
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.clearBrowserCache');
    const received = [];
    page.on('response', async (resp) => {
      if (!resp.url().startsWith(vaultUrl)) return;
      try {
        // The body as it came over the wire (compressed when the vault sent it gzip), and decoded.
        const { responseBodySize } = await resp.request().sizes();
        received.push({ url: resp.url(), bytes: responseBodySize, decoded: (await resp.body()).length, encoding: resp.headers()['content-encoding'] ?? null, frame: resp.frame().url() });
      } catch {
        // a 304 or an aborted response has no body
      }
    });
    await page.goto(url);
    cold.push(await measure(page));
    if (i === 0) {
      await page.waitForTimeout(300);
      // One frame's files: the number frame's page and what it loaded.
      const first = received.filter((r) => r.frame.includes('field=pan'));
      download = {
        files: first.map((r) => ({ path: new URL(r.url).pathname, bytes: r.bytes, decoded: r.decoded, encoding: r.encoding })),
        bytes: first.reduce((a, r) => a + r.bytes, 0),
        decoded: first.reduce((a, r) => a + r.decoded, 0),
      };
    }
    await page.goto(url);
    warm.push(await measure(page));
    await page.close();
  }
  const dist = join(root, 'dist');
  const gz = (f) => gzipSync(readFileSync(join(dist, f)), { level: 9 }).length;
  const frameGzip = { 'frame/frame.js': gz('frame/frame.js'), 'frame/frame.css': gz('frame/frame.css'), 'wasm/fieldseal_bg.wasm': gz('wasm/fieldseal_bg.wasm') };
  const loaderGzip = gz('hosted.js');
  result = {
    runs: n,
    cold: { panReadyMs: median(cold.map((r) => r.pan)), allReadyMs: median(cold.map((r) => r.all)) },
    warm: { panReadyMs: median(warm.map((r) => r.pan)), allReadyMs: median(warm.map((r) => r.all)) },
    download,
    frameFilesGzip: { ...frameGzip, total: Object.values(frameGzip).reduce((a, b) => a + b, 0) },
    loaderGzip,
  };
} finally {
  await browser.close();
  await server.close();
  await vault.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
const ms = (x) => `${x.toFixed(0)} ms`;
console.log(`hosted fields, Chromium headless, median of ${result.runs}:`);
console.log(`  mountFields() to the card number ready   empty cache ${ms(result.cold.panReadyMs)}   warm cache ${ms(result.warm.panReadyMs)}`);
console.log(`  mountFields() to all three fields ready  empty cache ${ms(result.cold.allReadyMs)}   warm cache ${ms(result.warm.allReadyMs)}`);
console.log(`  one frame's download from the vault: ${result.download.bytes} B over the wire, ${result.download.decoded} B decoded`);
for (const f of result.download.files) console.log(`    ${f.path.padEnd(28)} ${String(f.bytes).padStart(7)} B ${f.encoding ?? 'identity'} (${f.decoded} B decoded)`);
console.log(`  the frame's files gzip -9: ${result.frameFilesGzip.total} B; the loader in the merchant's page: ${result.loaderGzip} B gzip`);
console.log(`written: ${out}`);
