// npm run bench:browser: serves the built package and bench.html on 127.0.0.1, runs it in Debian's
// Chromium (headless, playwright-core) and prints the medians. Run `npm run build` first.
import { join } from 'node:path';
import { launchChromium, root, startServer } from '../../tests/browser/harness.mjs';

const n = Number(process.argv[2] ?? 300);
const server = await startServer({ '/bench/': join(root, 'benches/browser') });
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/bench/bench.html?n=${n}`);
  const result = await page.waitForFunction(() => window.benchResult, null, { timeout: 300_000 }).then((h) => h.jsonValue());
  console.log(JSON.stringify(result, null, 2));
  const row = (label, ms) => console.log(`${label.padEnd(52)} ${(ms * 1000).toFixed(0).padStart(7)} µs`);
  console.log(`\nmedian per field over ${n} seals of a 16-digit card number (${result.userAgent.match(/Chrome\/[\d.]+/)?.[0]}):`);
  row('fieldseal, prepared context (symmetric work only)', result.medianMs.fieldsealPrepared);
  row('fieldseal, empty pool (prepare + seal)', result.medianMs.fieldsealEmptyPool);
  row('fieldseal, preparing one context (idle time)', result.medianMs.fieldsealPrepareOnly);
  row('WebCrypto HPKE: ECDH + HKDF + AES-256-GCM', result.medianMs.webcryptoHpke);
  row('WebCrypto AES-256-GCM alone', result.medianMs.webcryptoAesGcmOnly);
  console.log(`timer resolution: ${(result.timerResolutionMs * 1000).toFixed(0)} µs`);
} finally {
  await browser.close();
  await server.close();
}
