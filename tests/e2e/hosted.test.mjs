// The demo storefront's hosted-fields checkout end to end: the real vault binary serving the card
// field frames on its own port (another origin than the shop's), the shop as `scripts/demo.sh`
// starts it, and Debian's Chromium. Buying with the card typed into the vault's frames, the
// receipt, every request the shop's page makes searched for the card number and CVC, validation
// messages across frames, and no CSP violation. Screenshots go to test-results/e2e/.
// Needs `npm run build` and the vault binary (`cargo build -p fieldseal-vault`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startShop } from '../../demo/server.mjs';
import { buildVault, startVault } from '../../demo/vault.mjs';
import { launchChromium, root } from '../browser/harness.mjs';
import { openRecorded } from './record.mjs';

const CARD = { number: '2223003122003222', spaced: '2223 0031 2200 3222', brand: 'Mastercard', cvc: '737' };
const shots = join(root, 'test-results', 'e2e');

let dataDir;
let vault;
let shop;
let browser;

/** A port free now on 127.0.0.1: the shop's, which the vault must know before it starts. */
const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

before(async () => {
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fieldseal-e2e-hosted-'));
  const port = await freePort();
  vault = await startVault({ bin: buildVault({ quiet: true }), dataDir, fieldsOrigins: [`http://127.0.0.1:${port}`] });
  shop = await startShop({ vaultUrl: vault.url, keys: vault.keys, dataDir, port });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await shop?.close();
  await vault?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const open = (path) => openRecorded(browser, `${shop.url}${path}`);

const field = (page, id) => page.frameLocator(`#${id} iframe`).locator('input');

function leaks(r) {
  const text = [r.url, JSON.stringify(r.headers), r.body].join('\n').replace(/fse1\.[A-Za-z0-9_-]+/g, ' ');
  let decoded = '';
  try {
    decoded = decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    // not URL-encoded
  }
  return [CARD.number, CARD.spaced, `cvc=${CARD.cvc}`, `"${CARD.cvc}"`].filter((s) => text.includes(s) || decoded.includes(s));
}

test('buy with hosted fields: the card typed into the vault\'s frames, receipt, no card number or CVC in any request', async (t) => {
  const { page, requests } = await open('/');
  await page.click('.product[data-sku="mug"] button.add');
  await Promise.all([page.waitForURL('**/checkout/hosted'), page.click('#go-checkout-hosted')]);
  await page.waitForSelector('body[data-ready]', { timeout: 20_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), '1');
  const frameSrc = await page.getAttribute('#card iframe', 'src');
  assert.ok(frameSrc.startsWith(`${vault.url}/fields/v1/frame.html?field=pan`), frameSrc);
  assert.notEqual(new URL(vault.url).origin, new URL(shop.url).origin);

  await page.fill('#email', 'jane.doe@example.com');
  await page.fill('#phone', '+1 415 555 0199');
  await field(page, 'card').pressSequentially('2223');
  await page.waitForFunction(() => document.getElementById('brand').textContent === 'Mastercard');
  await field(page, 'card').pressSequentially(CARD.number.slice(4));
  assert.equal(await field(page, 'card').inputValue(), CARD.spaced);
  await field(page, 'exp').pressSequentially('1230');
  await field(page, 'cvc').pressSequentially(CARD.cvc);
  await field(page, 'holder').pressSequentially('Jane Doe');
  const checkoutShot = join(shots, 'checkout-hosted.png');
  await page.screenshot({ path: checkoutShot, fullPage: true });
  await Promise.all([page.waitForURL(/\/orders\/ord_[0-9a-f]{16}$/, { timeout: 15_000 }), page.click('#pay')]);
  assert.equal(await page.textContent('#receipt-brand'), CARD.brand);
  assert.equal(await page.textContent('#receipt-last4'), CARD.number.slice(-4));
  const tokens = await page.$$eval('[data-token]', (els) => els.map((e) => e.dataset.token).sort());
  assert.deepEqual(tokens, ['card', 'cvc', 'email', 'exp', 'holder', 'phone']);
  const receiptShot = join(shots, 'receipt-hosted.png');
  await page.screenshot({ path: receiptShot, fullPage: true });
  t.diagnostic(`screenshots: ${checkoutShot} ${receiptShot}`);

  const all = await requests();
  const post = all.find((r) => r.url.endsWith('/checkout/hosted') && r.body);
  assert.ok(post, 'the checkout posted');
  const fields = Object.fromEntries(new URLSearchParams(post.body));
  for (const k of ['card', 'exp', 'cvc', 'holder']) assert.match(fields[k], /^fse1\./, k);
  for (const r of all) assert.deepEqual(leaks(r), [], r.url);
  // The envelopes were sealed for the shop's origin, in the vault's frame.
  const order = JSON.parse(readFileSync(join(dataDir, 'orders.json'), 'utf8')).at(-1);
  assert.equal(order.headers.card.origin, shop.url);
  assert.deepEqual(leaks({ url: '', headers: {}, body: readFileSync(join(dataDir, 'orders.json'), 'utf8') }), []);
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  assert.deepEqual(shop.cspReports, []);
  // The page may frame the vault's origin and nothing else, and runs no wasm itself.
  const csp = (await fetch(`${shop.url}/checkout/hosted`)).headers.get('content-security-policy');
  assert.match(csp, new RegExp(`^default-src 'self'; frame-src ${new URL(vault.url).origin.replace(/\./g, '\\.')}; script-src 'self'; `));
  assert.doesNotMatch(csp, /wasm-unsafe-eval/);
  await page.close();
});

test('hosted fields: an invalid number is announced by the page and nothing is posted', async () => {
  const { page, requests } = await open('/');
  await page.click('.product[data-sku="mug"] button.add');
  await page.goto(`${shop.url}/checkout/hosted`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
  await page.fill('#email', 'jane.doe@example.com');
  await page.fill('#phone', '+1 415 555 0199');
  await field(page, 'card').pressSequentially('4242424242424241');
  await field(page, 'exp').pressSequentially('1230');
  await page.click('#pay');
  await page.waitForFunction(() => document.getElementById('card-errors').textContent !== '');
  assert.match(await page.textContent('#card-errors'), /not valid/);
  assert.equal(await field(page, 'card').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.isVisible('#form-error'), true);
  await page.screenshot({ path: join(shots, 'checkout-hosted-invalid.png'), fullPage: true });
  assert.ok(!(await requests()).some((r) => r.url.endsWith('/checkout/hosted') && r.body), 'nothing posted');
  await page.close();
});
