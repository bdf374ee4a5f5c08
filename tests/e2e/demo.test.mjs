// The demo storefront end to end: the real vault binary (a fresh vault in a temporary directory),
// the demo server as `scripts/demo.sh` starts it, and Debian's Chromium driven by playwright-core.
// Buying with three brands, every request the page makes during checkout recorded and searched for
// the card number, CVC and e-mail, validation and the stray-PAN guard, the operator console by
// role with the audit trail, and no CSP violation anywhere. Screenshots go to
// test-results/e2e/ (the run prints their paths).
// Needs `npm run build` and the vault binary (`cargo test` or `cargo build -p fieldseal-vault`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startShop } from '../../demo/server.mjs';
import { buildVault, startVault } from '../../demo/vault.mjs';
import { launchChromium, root } from '../browser/harness.mjs';
import { openRecorded } from './record.mjs';
import { codeAtStep, codes, parseOtpauth } from './totp.mjs';

const CARDS = {
  visa: { number: '4111111111111111', brand: 'Visa', cvc: '737', prefix: '41' }, // 4 alone could be Elo (401178 ...)
  mastercard: { number: '2223003122003222', brand: 'Mastercard', cvc: '737', prefix: '2223' },
  amex: { number: '378282246310005', brand: 'American Express', cvc: '7373', prefix: '37' },
};
const EMAIL = 'jane.doe@example.com';
const PHONE = '+1 415 555 0199';
const shots = join(root, 'test-results', 'e2e');
const STEP_UP_SECS = 4;

let dataDir;
let vault;
let shop;
let browser;
const orders = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'fieldseal-e2e-'));
  // A plain reveal needs a code entered within STEP_UP_SECS (the vault's default is 300 s).
  vault = await startVault({ bin: buildVault({ quiet: true }), dataDir, stepUpSecs: STEP_UP_SECS });
  shop = await startShop({ vaultUrl: vault.url, keys: vault.keys, operators: vault.operators, dataDir });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await shop?.close();
  await vault?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Opens a page recording every request it makes (URL, all headers, body) and every CSP violation
 * the page sees.
 */
async function open(path) {
  const opened = await openRecorded(browser, `${shop.url}${path}`);
  await opened.page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
  return opened;
}

/** No violation on the current page, nor reported (report-uri) by any page before it. */
async function noCspViolation(page) {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], `CSP violations on ${page.url()}`);
  assert.deepEqual(shop.cspReports, [], 'CSP violation reports');
}

/**
 * Where a recorded request holds a secret: the card number (with or without spaces) or the e-mail
 * anywhere (URL, headers, body, URL-decoded body); the CVC, too short to search for in random text
 * such as envelopes, order ids or header values, in any form value that is not an envelope.
 */
function leaks(request, { long, cvc }) {
  let decoded = '';
  try {
    decoded = decodeURIComponent(request.body.replace(/\+/g, ' '));
  } catch {
    // not URL-encoded
  }
  const text = [request.url, JSON.stringify(request.headers), request.body, decoded].join('\n');
  const found = long.filter((s) => text.includes(s));
  const values = [...new URLSearchParams(request.body).values(), ...new URL(request.url).searchParams.values()];
  if (values.some((v) => !v.startsWith('fse1.') && v.includes(cvc))) found.push(cvc);
  return found;
}

async function addToCart(page, skus) {
  for (const sku of skus) await page.click(`.product[data-sku="${sku}"] button.add`);
}

async function fillCheckout(page, card, { exp = '12 / 30', cvc = card.cvc, notes = '' } = {}) {
  await page.fill('#email', EMAIL);
  await page.fill('#phone', PHONE);
  await page.locator('#card').pressSequentially(card.number);
  await page.fill('#exp', exp);
  await page.fill('#cvc', cvc);
  await page.fill('#holder', 'Jane Doe');
  if (notes) await page.fill('#notes', notes);
}

for (const [name, card] of Object.entries(CARDS)) {
  test(`buy with ${card.brand}: brand while typing, receipt, and no plaintext in any request`, async (t) => {
    const { page, requests } = await open('/');
    // An empty cart offers no checkout.
    assert.equal(await page.isVisible('#go-checkout'), false);
    if (name === 'visa') await page.screenshot({ path: join(shots, 'shop.png'), fullPage: true });
    await addToCart(page, ['mug', 'beans', 'mug']);
    await Promise.all([page.waitForURL('**/checkout'), page.click('#go-checkout')]);
    await page.waitForSelector('body[data-ready="1"]');
    assert.equal(await page.textContent('#cart-total'), '$50.50');

    // The brand shows as soon as the first digits decide it, and the number is grouped.
    await page.locator('#card').pressSequentially(card.prefix);
    assert.equal(await page.textContent('#brand'), card.brand);
    await page.fill('#card', '');
    await fillCheckout(page, card);
    const grouped = await page.inputValue('#card');
    assert.equal(grouped.replace(/ /g, ''), card.number);
    assert.equal(grouped, name === 'amex' ? '3782 822463 10005' : card.number.replace(/(\d{4})(?=\d)/g, '$1 '));
    assert.equal(await page.textContent('#brand'), card.brand);
    const checkoutShot = join(shots, `checkout-${name}.png`);
    await page.screenshot({ path: checkoutShot, fullPage: true });

    await Promise.all([page.waitForURL(/\/orders\/ord_[0-9a-f]{16}$/, { timeout: 15_000 }), page.click('#pay')]);
    assert.equal(await page.textContent('#receipt-brand'), card.brand);
    assert.equal(await page.textContent('#receipt-last4'), card.number.slice(-4));
    assert.equal(await page.textContent('#receipt-total'), '$50.50');
    const tokens = await page.$$eval('[data-token]', (els) => Object.fromEntries(els.map((e) => [e.dataset.token, e.textContent])));
    assert.deepEqual(Object.keys(tokens).sort(), ['card', 'cvc', 'email', 'exp', 'holder', 'phone']);
    for (const token of Object.values(tokens)) assert.match(token, /^tok_[A-Za-z0-9_-]{22}$/);
    // The checkout key gets no fingerprint, so the receipt shows none.
    assert.equal(await page.$('#receipt-fingerprint'), null);
    const envelopes = await page.$$eval('[data-envelope]', (els) => els.map((e) => e.textContent));
    assert.equal(envelopes.length, 6);
    for (const env of envelopes) assert.match(env, /^fse1\./);
    const receiptShot = join(shots, `receipt-${name}.png`);
    await page.screenshot({ path: receiptShot, fullPage: true });
    t.diagnostic(`screenshots: ${checkoutShot} ${receiptShot}`);

    // Every request the page made: the checkout POST carried envelopes for each sealed field and
    // the card number (with or without spaces), CVC and e-mail in none of them.
    const all = await requests();
    const post = all.find((r) => r.method === 'POST' && r.url.endsWith('/checkout'));
    assert.ok(post, 'the checkout was posted');
    const fields = new URLSearchParams(post.body);
    for (const f of ['card', 'exp', 'cvc', 'holder', 'email', 'phone']) assert.match(fields.get(f), /^fse1\./, f);
    assert.equal(fields.getAll('card').length, 1);
    const secrets = { long: [card.number, grouped, EMAIL, encodeURIComponent(EMAIL)], cvc: card.cvc };
    for (const r of all) assert.deepEqual(leaks(r, secrets), [], `${r.method} ${r.url}`);
    // The check finds what it looks for: the same form with plaintext values.
    const plain = { ...post, body: new URLSearchParams({ card: grouped, cvc: card.cvc, email: EMAIL }).toString() };
    assert.deepEqual(leaks(plain, secrets).sort(), [grouped, EMAIL, encodeURIComponent(EMAIL), card.cvc].sort());
    assert.ok(all.length >= 8, `only ${all.length} requests recorded`);
    orders.push({ id: await page.getAttribute('#receipt', 'data-order'), card, tokens });
    await noCspViolation(page);
    await page.close();
  });
}

test('an invalid number, an expired date and a short CVC show messages and submit nothing', async () => {
  const { page, requests } = await checkoutAttempt('tote', { number: '4111111111111112', cvc: '73' }, { exp: '01 / 20' });
  for (const id of ['card', 'exp', 'cvc']) {
    assert.equal(await page.getAttribute(`#${id}`, 'aria-invalid'), 'true', id);
    assert.ok((await message(page, id)).length > 5, `${id} has a message`);
  }
  assert.match(await page.textContent('#form-error'), /correct the highlighted fields/);
  await blockedAndClean(page, requests, 'checkout-invalid.png');
});

/** Puts `sku` in the cart, fills the checkout and presses Pay. */
async function checkoutAttempt(sku, card, options) {
  const { page, requests } = await open('/');
  await addToCart(page, [sku]);
  await page.goto(`${shop.url}/checkout`);
  await page.waitForSelector('body[data-ready="1"]');
  await fillCheckout(page, card, options);
  await page.click('#pay');
  return { page, requests };
}

/** The validation message fieldseal shows for field `id`. */
async function message(page, id) {
  return page.textContent(`#${await page.getAttribute(`#${id}`, 'aria-describedby')}`);
}

/** Nothing was posted, the page stayed, no CSP violation; saves a screenshot. */
async function blockedAndClean(page, requests, shot) {
  await page.screenshot({ path: join(shots, shot), fullPage: true });
  assert.equal((await requests()).filter((r) => r.method === 'POST').length, 0, 'nothing was posted');
  assert.equal(page.url(), `${shop.url}/checkout`);
  await noCspViolation(page);
  await page.close();
}

test('a card number typed into the order notes blocks the submit with a message', async () => {
  const { page, requests } = await checkoutAttempt('notebook', CARDS.visa, { notes: 'please bill 4111 1111 1111 1111 again' });
  assert.equal(await page.getAttribute('#notes', 'aria-invalid'), 'true');
  assert.match(await message(page, 'notes'), /card number can only be entered in the card number field/);
  assert.match(await page.textContent('#form-error'), /card number was typed outside the card number field/);
  await blockedAndClean(page, requests, 'checkout-stray-pan.png');
});

test('the merchant back end refuses plaintext, wrong kinds and stray card numbers, and keeps no envelope', async () => {
  const post = (body) => fetch(`${shop.url}/checkout`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body), redirect: 'manual',
  });
  const plain = await post({ cart: 'mug:1', card: CARDS.visa.number, exp: '12/30', cvc: '737', holder: 'J', email: EMAIL, phone: PHONE });
  assert.equal(plain.status, 400);
  const text = await plain.text();
  assert.match(text, /not sealed/);
  assert.ok(!text.includes(CARDS.visa.number) && !text.includes(EMAIL), 'the refusal does not echo values');

  // Envelopes sealed in Node with the package, as a fetch-based checkout would post them.
  const { load } = await import('fieldseal');
  const sealer = await load({
    keys: await (await fetch(`${shop.url}/v1/keys`)).text(),
    wasm: readFileSync(join(root, 'dist/wasm/fieldseal_bg.wasm')),
    poolSize: 0,
  });
  const sealed = () => sealer.sealFields({
    card: { value: CARDS.visa.number, kind: 'pan' }, exp: { value: '12/30', kind: 'exp' }, cvc: { value: '737', kind: 'cvc' },
    holder: { value: 'Jane Doe', kind: 'name' }, email: { value: EMAIL, kind: 'email' }, phone: { value: PHONE, kind: 'phone' },
  });
  const swapped = sealed();
  [swapped.card, swapped.holder] = [swapped.holder, swapped.card];
  const wrongKinds = await post({ cart: 'mug:1', ...swapped });
  assert.equal(wrongKinds.status, 400);
  assert.match(await wrongKinds.text(), /Card number: an envelope of kind name, expected pan/);
  const stray = await post({ cart: 'mug:1', ...sealed(), notes: 'card 4111.1111.1111.1111 thanks' });
  assert.equal(stray.status, 400);
  assert.match(await stray.text(), /order notes hold a card number/);
  // A field the vault refuses (an e-mail that is not one) leaves no token of the accepted fields.
  const storedTokens = async () => {
    let after = 0;
    let n = 0;
    for (;;) {
      const r = await fetch(`${vault.url}/v1/audit?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${vault.keys.auditor}` } });
      const { entries, next_after: next } = await r.json();
      n += entries.filter((e) => e.action === 'tokenize' && e.outcome === 'ok').length;
      if (entries.length < 1000) return n;
      after = next;
    }
  };
  const storedBefore = await storedTokens();
  const badEmail = { ...sealed(), ...sealer.sealFields({ email: { value: 'not an address', kind: 'email' } }) };
  const refused = await post({ cart: 'mug:1', ...badEmail });
  assert.equal(refused.status, 422);
  const refusedText = await refused.text();
  assert.match(refusedText, /E-mail: not an e-mail address \(email_invalid\)/);
  assert.ok(!refusedText.includes('batch_aborted'), 'only the refused field is named');
  assert.equal(await storedTokens(), storedBefore, 'no orphan token of the accepted fields');
  const ok = await post({ cart: 'mug:1', ...sealed(), notes: 'tracking 12345678901234567890' });
  assert.equal(ok.status, 303, 'a long order number is not a card number');

  // What the shop keeps: tokens and envelope headers; no value, no envelope. What the vault logged:
  // no value either.
  const orderFile = readFileSync(join(dataDir, 'orders.json'), 'utf8');
  for (const secret of [CARDS.visa.number, CARDS.amex.number, EMAIL, 'fse1.']) assert.ok(!orderFile.includes(secret), `orders.json holds ${secret}`);
  const vaultLog = readFileSync(vault.log, 'utf8');
  for (const secret of [CARDS.visa.number, CARDS.amex.number, EMAIL]) assert.ok(!vaultLog.includes(secret), `vault.log holds ${secret}`);
});

/** One code source per operator (each code is accepted once). */
const codeSources = new Map();
const nextCode = (op) => {
  if (!codeSources.has(op.name)) codeSources.set(op.name, codes(op.totp));
  return codeSources.get(op.name)();
};

/**
 * Signs `op` ({ name, password, totp }) in to the console with a fresh TOTP code; returns the
 * page, with the session token the console API answered as `page.session`.
 */
async function console_(op) {
  const { page } = await open('/console');
  await page.fill('#operator', op.name);
  await page.fill('#password', op.password);
  await page.fill('#totp', await nextCode(op));
  const answered = page.waitForResponse((r) => r.url().endsWith('/console/api/sign-in'));
  await page.click('#signin button');
  page.session = (await (await answered).json()).session;
  await page.waitForSelector('body[data-role]');
  await page.waitForSelector('#chain-status[data-intact]');
  return page;
}

async function auditRows(page) {
  return page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => ({
    action: tr.dataset.action, outcome: tr.dataset.outcome, text: tr.textContent,
  })));
}

/**
 * Reveals `fields` of an order. When the console asks for a second factor first, `op`'s next code
 * is entered (and `stepUps.count` counts it); without `op` that is a failure.
 */
async function reveal(page, orderId, fields, purpose, { op, stepUps } = {}) {
  const order = page.locator(`.order[data-order="${orderId}"]`);
  for (const box of await order.locator('.checks input').all()) {
    await box.setChecked(fields.includes(await box.getAttribute('value')));
  }
  await order.locator('input.purpose').fill(purpose);
  // Done when the audit trail has been rendered again after the reveal.
  const renders = Number(await page.getAttribute('#chain-status', 'data-renders'));
  await order.locator('.reveal button').click();
  await doneOrStepUp(page, `#chain-status[data-renders="${renders + 1}"]`, { op, stepUps });
  return order;
}

/**
 * Waits for `done` (a selector); if the console asks for a second factor first, enters `op`'s next
 * code (counted in `stepUps.count`) and waits on. The step-up window is short in these tests, so
 * any plain reveal may ask.
 */
async function doneOrStepUp(page, done, { op, stepUps } = {}) {
  const first = await Promise.race([
    page.waitForSelector(done).then(() => 'done'),
    page.waitForSelector('#stepup:not([hidden])').then(() => 'step-up'),
  ]);
  if (first === 'step-up') {
    assert.ok(op, 'the console asked for a second factor');
    if (stepUps) stepUps.count += 1;
    await page.fill('#stepup-code', await nextCode(op));
    await page.click('#stepup button:not([type])');
    await page.waitForSelector(done);
  }
}

test('the test computes TOTP codes as RFC 6238 appendix B does (SHA-1)', () => {
  // The RFC's seed "12345678901234567890" in base32, 8 digits, at 59 s and 1111111109 s.
  const params = parseOtpauth('otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8&period=30');
  assert.equal(codeAtStep(params, Math.floor(59 / 30)), '94287082');
  assert.equal(codeAtStep(params, Math.floor(1111111109 / 30)), '07081804');
  assert.match(vault.operators.payments.totp, /^otpauth:\/\/totp\/fieldseal:pat\?secret=[A-Z2-7]+/);
});

test('the operator console: masked for support, plain for payments, refused without the permission; the audit trail verifies', async () => {
  const visa = orders.find((o) => o.card === CARDS.visa);
  assert.ok(visa, 'the Visa order exists');

  const ops = vault.operators;
  const support = await console_(ops.support);
  assert.equal(await support.textContent('#role'), 'support');
  assert.equal(await support.textContent('#operator-name'), 'sasha');
  let order = await reveal(support, visa.id, ['card', 'email', 'cvc'], 'customer call 5531');
  assert.equal(await order.locator('dd[data-field="card"]').textContent(), '411111******1111');
  assert.equal(await order.locator('dd[data-field="card"]').getAttribute('data-reveal'), 'masked');
  assert.equal(await order.locator('dd[data-field="email"]').textContent(), 'j***@example.com');
  assert.match(await order.locator('dd[data-field="cvc"]').textContent(), /refused: role support may not reveal cvc/);
  // support may not read the audit log: it sees its own entries, and the chain's status.
  let rows = await auditRows(support);
  assert.match(await support.textContent('#audit-scope'), /Your entries only/);
  assert.ok(rows.length >= 3 && rows.every((r) => r.text.includes('support (sasha)')), 'only sasha\'s entries');
  assert.ok(rows.some((r) => r.action === 'operator.sign_in'), 'the sign-in is in the trail');
  assert.equal(await support.getAttribute('#chain-status', 'data-intact'), 'true');
  await noCspViolation(support);
  await support.close();

  const payments = await console_(ops.payments);
  order = await reveal(payments, visa.id, ['card'], 'capture order', { op: ops.payments });
  assert.equal(await order.locator('dd[data-field="card"]').textContent(), CARDS.visa.number);
  assert.equal(await order.locator('dd[data-field="card"]').getAttribute('data-reveal'), 'plain');
  // A purpose is required: the vault refuses a reveal without one.
  order = await reveal(payments, visa.id, ['card'], '   ', { op: ops.payments });
  assert.match(await order.locator('.form-error').textContent(), /purpose/);
  await noCspViolation(payments);
  await payments.close();

  // The auditor may read the log but not reveal: refused, and told why.
  const auditor = await console_(ops.auditor);
  order = await reveal(auditor, visa.id, ['card'], 'curious');
  assert.match(await order.locator('.form-error').textContent(), /Refused: role auditor may not reveal values/);
  assert.equal(await order.locator('dd').count(), 0);

  // The auditor sees the whole trail: those reveals with their outcomes, and the verified chain.
  assert.match(await auditor.textContent('#audit-scope'), /Every tokenization/);
  rows = await auditRows(auditor);
  const reveals = rows.filter((r) => r.action === 'reveal');
  assert.ok(reveals.some((r) => r.outcome === 'masked' && r.text.includes('support') && r.text.includes('customer call 5531')));
  assert.ok(reveals.some((r) => r.outcome === 'denied' && r.text.includes('support') && r.text.includes('cvc')));
  assert.ok(reveals.some((r) => r.outcome === 'plain' && r.text.includes('payments') && r.text.includes('capture order')));
  assert.ok(reveals.some((r) => r.outcome === 'denied' && r.text.includes('auditor (avery)')));
  assert.ok(rows.some((r) => r.action === 'operator.sign_in' && r.text.includes('payments (pat)')));
  assert.ok(rows.filter((r) => r.action === 'tokenize' && r.outcome === 'ok').length >= 6 * Object.keys(CARDS).length);
  assert.equal(await auditor.getAttribute('#chain-status', 'data-intact'), 'true');
  assert.match(await auditor.textContent('#chain-status'), /chain intact: \d+ entries verified/);
  for (const r of rows) assert.ok(!r.text.includes(CARDS.visa.number), 'no card number in the audit trail');
  const consoleShot = join(shots, 'console.png');
  await auditor.screenshot({ path: consoleShot, fullPage: true });
  await noCspViolation(auditor);
  await auditor.close();

  // A wrong code, a wrong password and an unknown name get one answer at sign-in.
  const { page } = await open('/console');
  const code = await nextCode(ops.support);
  const wrongCode = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
  for (const [name, password, totp] of [['sasha', ops.support.password, wrongCode], ['sasha', 'not-the-password', code], ['nobody', 'x', code]]) {
    await page.fill('#operator', name);
    await page.fill('#password', password);
    await page.fill('#totp', totp);
    await page.click('#signin button');
    await page.waitForSelector('#signin-error:not([hidden])');
    assert.match(await page.textContent('#signin-error'), /Sign-in refused: unknown or disabled operator, wrong password, or a wrong/);
    await page.$eval('#signin-error', (e) => { e.hidden = true; });
  }
  assert.equal(await page.$('body[data-role]'), null, 'not signed in');
  await page.close();
});

test('the console shows every key\'s and operator\'s lock state; a locked operator reveals nothing; security unlocks with a code', async () => {
  const visa = orders.find((o) => o.card === CARDS.visa);
  // sasha's reveals locked by hand, as the vault locks a caller after an anomaly in its reveals.
  assert.match(await vault.cli(['locks', 'lock', 'operator:sasha', '--reason', 'console drill']), /locked operator:sasha/);
  const auditor = await console_(vault.operators.auditor);
  const sasha = '#callers tr[data-caller="operator:sasha"]';
  await auditor.waitForSelector(`${sasha}[data-locked="true"]`);
  assert.match(await auditor.textContent(sasha), /locked since .*by hand: console drill/);
  assert.equal(await auditor.locator(`${sasha} button`).count(), 0, 'the auditor may not unlock');
  assert.equal(await auditor.getAttribute('#callers tr[data-caller="operator:pat"]', 'data-locked'), 'false');
  assert.ok(await auditor.locator(`#callers tr[data-caller^="apikey:"]`).count() >= 2, 'the API keys are listed');
  await noCspViolation(auditor);
  await auditor.close();

  const support = await console_(vault.operators.support);
  assert.equal(await support.locator('#callers-section').isHidden(), true, 'support sees no lock states');
  const order = await reveal(support, visa.id, ['email'], 'customer call 6642');
  assert.match(await order.locator('.form-error').textContent(), /reveals are locked/);
  await support.close();

  const security = await console_(vault.operators.security);
  await security.waitForSelector(`${sasha}[data-locked="true"] button`);
  const renders = Number(await security.getAttribute('#callers-section', 'data-renders'));
  await security.click(`${sasha} button`);
  await doneOrStepUp(security, `#callers-section[data-renders="${renders + 1}"]`, { op: vault.operators.security });
  assert.equal(await security.getAttribute(sasha, 'data-locked'), 'false');
  await noCspViolation(security);
  await security.close();

  const again = await console_(vault.operators.support);
  const revealed = await reveal(again, visa.id, ['email'], 'customer call 6642');
  assert.equal(await revealed.locator('dd[data-field="email"]').textContent(), 'j***@example.com');
  await again.close();
});

test('a plain reveal past the step-up window asks for a code; the session is in page memory only; sign-out ends it', async () => {
  const visa = orders.find((o) => o.card === CARDS.visa);
  const op = await vault.addOperator('pat.stepup', 'payments');
  const page = await console_(op);
  // Past the window (the sign-in's code counts as the last second factor): the vault answers
  // step_up_required, the console asks, and the reveal runs again with the new code.
  await new Promise((r) => setTimeout(r, (STEP_UP_SECS + 1) * 1000));
  const stepUps = { count: 0 };
  let order = await reveal(page, visa.id, ['card'], 'chargeback 88', { op, stepUps });
  assert.equal(stepUps.count, 1, 'one step-up');
  assert.equal(await order.locator('dd[data-field="card"]').textContent(), CARDS.visa.number);
  // A wrong code is refused and the form stays; cancelling gives the vault's refusal.
  await new Promise((r) => setTimeout(r, (STEP_UP_SECS + 1) * 1000));
  await order.locator('.reveal button').click();
  await page.waitForSelector('#stepup:not([hidden])');
  await page.fill('#stepup-code', '000000');
  await page.click('#stepup button:not([type])');
  await page.waitForSelector('#stepup-error:not([hidden])');
  assert.match(await page.textContent('#stepup-error'), /Code refused: a wrong, stale or already used code/);
  await page.click('#stepup-cancel');
  await order.locator('.form-error:not([hidden])').waitFor();
  assert.match(await order.locator('.form-error').textContent(), /Refused: a plain reveal by an operator needs a TOTP code/);

  // No cookie: the session is in the page's memory only (a script on another page of the shop's
  // origin has nothing to ride on), and the console API answers nothing without it.
  assert.deepEqual(await page.context().cookies(), []);
  assert.match(page.session, /^fso_/);
  const me = (headers) => fetch(`${shop.url}/console/api/me`, { headers }).then((r) => r.status);
  assert.equal(await me({}), 401);
  assert.equal(await me({ authorization: `Bearer ${page.session}` }), 200);
  // Sign-out ends the session at the vault: the token opens nothing any more.
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  assert.equal(await me({ authorization: `Bearer ${page.session}` }), 401);
  // A reload signs out too (nothing kept).
  await page.reload();
  await page.waitForSelector('body[data-ready="1"] #signin:not([hidden])');
  await page.close();
});

test('the console exports and erases a customer for the privacy role only; the erased order reveals nothing', async () => {
  const amex = orders.find((o) => o.card === CARDS.amex);
  assert.ok(amex, 'the American Express order exists');
  const support = await console_(vault.operators.support);
  assert.equal(await support.locator(`.order[data-order="${amex.id}"] [data-subject]`).count(), 0, 'support may neither export nor erase');
  await support.close();

  const privacy = await console_(vault.operators.privacy);
  const order = privacy.locator(`.order[data-order="${amex.id}"]`);
  await order.locator('[data-subject="export"]').click();
  // The e-mail comes back in the clear: a second factor if the sign-in's is too old.
  await doneOrStepUp(privacy, `.order[data-order="${amex.id}"] .customer-result[data-result="export 200"]`, { op: vault.operators.privacy });
  const exported = await order.locator('table.export tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    kind: tr.dataset.kind, cells: [...tr.cells].map((c) => c.textContent),
  })));
  const byKind = Object.fromEntries(exported.map((r) => [r.kind, r.cells]));
  assert.equal(byKind.email[3], 'plain');
  assert.equal(byKind.email[4], EMAIL);
  assert.equal(byKind.pan[3], 'masked');
  assert.ok(!byKind.pan[4].includes(CARDS.amex.number), 'the card number is masked');
  assert.equal(byKind.cvc[3], 'withheld', 'a security code is never exported');
  privacy.once('dialog', (d) => d.accept());
  await order.locator('[data-subject="erase"]').click();
  await order.locator('.customer-result[data-result="erase 200"]').waitFor();
  assert.match(await order.locator('.customer-result').textContent(), /Customer erased: 6 values deleted/);
  await noCspViolation(privacy);
  await privacy.close();

  const op = await vault.addOperator('pat.erasure', 'payments');
  const payments = await console_(op);
  const revealed = await reveal(payments, amex.id, ['card', 'email'], 'after erasure', { op });
  assert.equal(await revealed.locator('dd[data-field="card"]').getAttribute('data-reveal'), 'not_found');
  assert.equal(await revealed.locator('dd[data-field="email"]').getAttribute('data-reveal'), 'not_found');
  await payments.close();
});

test('every page is served with the strict CSP and security headers, and no violation was reported', async () => {
  for (const path of ['/', '/checkout', '/console', `/orders/${orders[0].id}`, '/fieldseal/index.js', '/js/checkout.js']) {
    const r = await fetch(`${shop.url}${path}`);
    assert.equal(r.status, 200, path);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'; script-src 'self' 'wasm-unsafe-eval'/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  }
  assert.equal((await fetch(`${shop.url}/fieldseal/wasm/fieldseal_bg.wasm`)).headers.get('content-type'), 'application/wasm');
  assert.equal((await fetch(`${shop.url}/pages/checkout.html`)).status, 404);
  assert.equal((await fetch(`${shop.url}/..%2fpackage.json`)).status, 404);
  assert.deepEqual(shop.cspReports, [], 'CSP reports received');
});
