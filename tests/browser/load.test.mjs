// Closed before load, closed on failure: a form protected with `protect(form, load(...))` posts
// nothing in the clear while the key set is still loading (the submit waits, then is sealed) or
// after loading failed (503, a dropped connection, a substituted key set refused by the pins): the
// form stays closed with a message and a `fieldseal:error`. The control pages (protected only
// after `await load()`; unpinned) show the attacks are real. Run `npm run build` first.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { fillValid, keySet, leaks, openPage, postsTo, SECRETS, submitForm, withBrowser } from './harness.mjs';
import { parseEnvelope } from '../../js/envelope.js';

const env = withBrowser();

const SECRET_VALUES = [SECRETS.pan, SECRETS.panSpaced, SECRETS.cvc, SECRETS.email];
// Opens a page without waiting for the key set.
const open = (path) => openPage(env.browser, `${env.server.url}${path}`, { ready: 'body[data-protected], body[data-ready]' });

test('control: a form protected only after `await load()` posts plaintext when Pay is pressed early', async () => {
  const { page } = await openPage(env.browser, `${env.server.url}/checkout.html?late&keys=/v1/keys-slow`, { ready: 'form' });
  await fillValid(page);
  const before = postsTo(env.server).length;
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.click('#pay')]);
  assert.equal(postsTo(env.server).length, before + 1);
  assert.notDeepEqual(leaks(postsTo(env.server).at(-1).body, SECRET_VALUES), [], 'the attack this file defends against');
  await page.close();
});

test('a submit while the key set is still loading waits, then posts envelopes only', async () => {
  const { page, sent } = await open('/checkout.html?keys=/v1/keys-slow');
  assert.equal(await page.evaluate(() => document.body.dataset.ready), undefined, 'still loading');
  await fillValid(page);
  const before = postsTo(env.server).length;
  await page.click('#pay');
  assert.equal(await page.evaluate(() => document.body.dataset.ready), undefined, 'pressed while loading');
  await page.waitForTimeout(300);
  assert.equal(postsTo(env.server).length, before, 'nothing posted while loading');
  // new FormData(form) and the native submit while loading: no protected field, no card number.
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  const entries = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).entries()));
  assert.deepEqual(leaks(JSON.stringify(entries), SECRET_VALUES), []);
  await page.fill('#notes', 'ring twice');
  // The pending submit goes ahead once the sealer is ready: checked and sealed.
  await page.waitForURL('**/pay', { timeout: 10_000 });
  assert.equal(postsTo(env.server).length, before + 1, 'one POST');
  const raw = postsTo(env.server).at(-1).body;
  const fields = Object.fromEntries(new URLSearchParams(raw));
  for (const name of ['card', 'exp', 'cvc', 'email']) assert.ok(fields[name]?.startsWith('fse1.'), name);
  assert.equal(fields.notes, 'ring twice');
  for (const r of sent) assert.deepEqual(leaks(r.url + r.body, SECRET_VALUES), [], r.url);
  await page.close();
});

test('the native submit while the key set is loading posts no protected field and no card number', async () => {
  const { page } = await open('/checkout.html?keys=/v1/keys-slow');
  await fillValid(page);
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  const before = postsTo(env.server).length;
  await Promise.all([
    page.waitForURL('**/pay'),
    page.evaluate(() => HTMLFormElement.prototype.submit.call(document.querySelector('#checkout'))),
  ]);
  assert.equal(postsTo(env.server).length, before + 1);
  assert.deepEqual(leaks(postsTo(env.server).at(-1).body, SECRET_VALUES), []);
  await page.close();
});

test('while the key set is loading, full-width digits count as digits', async () => {
  const { page } = await open('/checkout.html?keys=/v1/keys-slow');
  // 4111 1111 1111 1111 in full-width digits, as some phone keyboards type them.
  const wide = '\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11';
  await page.fill('#notes', wide);
  await page.fill('#coupon', '\uff11\uff12\uff13');
  const names = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).keys()));
  assert.ok(!names.includes('notes'), `the full-width card number is left out: ${names}`);
  assert.ok(names.includes('coupon'), 'three full-width digits are not a card number');
  await page.close();
});

for (const [what, keys, code] of [
  ['the vault answers 503', '/v1/keys-down', 'keyset_fetch'],
  ['the connection drops', '/v1/keys-reset', 'keyset_fetch'],
]) {
  test(`when loading fails (${what}) the form stays closed with a message and a fieldseal:error`, async () => {
    const { page } = await openPage(env.browser, `${env.server.url}/checkout.html?keys=${keys}`);
    assert.equal(await page.evaluate(() => document.body.dataset.ready), 'failed');
    await fillValid(page);
    const before = postsTo(env.server).length;
    await page.click('#pay');
    await page.evaluate(() => document.querySelector('#checkout').submit());
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
    assert.equal(postsTo(env.server).length, before, 'nothing posted');
    const alert = page.locator('#checkout [role=alert]');
    assert.equal(await alert.textContent(), 'Secure payment is unavailable right now. Please try again later.');
    const errors = (await page.evaluate(() => window.events)).filter((e) => e.type === 'error');
    assert.ok(errors.length >= 2, 'one at the failure, one per attempt');
    assert.equal(errors[0].detail.code, code);
    assert.deepEqual(leaks(JSON.stringify(errors), SECRET_VALUES), []);
    await page.close();
  });
}

test('in a browser, a key-set URL on *.localhost may be plain http', async () => {
  const { page } = await open('/checkout.html');
  const results = await page.evaluate(async () => {
    const { load } = await import('/fieldseal/index.js');
    const set = await (await fetch('/v1/keys')).text();
    const requested = [];
    const fetchImpl = async (u) => {
      requested.push(u);
      return new Response(set);
    };
    const out = {};
    for (const keys of ['http://shop.localhost:8700/v1/keys', 'http://localhost.example.com/v1/keys']) {
      out[keys] = await load({ keys, fetch: fetchImpl, poolSize: 0, refreshKeys: 0 }).then((s) => s.keyId, (e) => e.code);
    }
    return { out, requested };
  });
  assert.deepEqual(results.out, {
    'http://shop.localhost:8700/v1/keys': 'test-key-1',
    'http://localhost.example.com/v1/keys': 'keyset_insecure_url',
  });
  assert.deepEqual(results.requested, ['http://shop.localhost:8700/v1/keys']);
  await page.close();
});

// The pin of the key the test server serves at /v1/keys (RFC 7638, computed here).
const { x, y } = keySet().keys[0];
const PIN = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url');

test('pinned keys: a substituted key set keeps the form closed; the pinned one seals', async () => {
  // Control: without pins the page seals to whatever key set it is handed.
  const { page: open1 } = await openPage(env.browser, `${env.server.url}/checkout.html?keys=/v1/keys-substituted`);
  await fillValid(open1);
  const { fields } = await submitForm(env.server, open1);
  assert.equal(parseEnvelope(fields.card).kid, 'test-key-2', 'the attack this test defends against');
  await open1.close();

  const { page } = await openPage(env.browser, `${env.server.url}/checkout.html?keys=/v1/keys-substituted&pins=${PIN}`);
  assert.equal(await page.evaluate(() => document.body.dataset.ready), 'failed');
  await fillValid(page);
  const before = postsTo(env.server).length;
  await page.click('#pay');
  await page.waitForTimeout(300);
  assert.equal(postsTo(env.server).length, before, 'nothing posted');
  const errors = (await page.evaluate(() => window.events)).filter((e) => e.type === 'error');
  assert.equal(errors[0]?.detail.code, 'keyset_unpinned');
  await page.close();

  const { page: pinned } = await openPage(env.browser, `${env.server.url}/checkout.html?pins=${PIN}`);
  await fillValid(pinned);
  const { fields: ok } = await submitForm(env.server, pinned);
  assert.equal(parseEnvelope(ok.card).kid, 'test-key-1');
  await pinned.close();
});
