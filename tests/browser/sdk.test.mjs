// The built package (dist/) in Debian's Chromium, driven by playwright-core, served on 127.0.0.1:
// formatting and brand events while typing, validation messages, what the submit actually posts
// (envelopes only, opened natively by fieldseal-core), the stray-PAN guard in each mode, detach(),
// the strict CSP, the README snippet as written, and a Vite-built page.
// Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { appWithPackage, fillValid, launchChromium, leaks, openPage, postsTo, root, SECRETS, startServer, submitForm } from './harness.mjs';
import { parseEnvelope } from '../../js/envelope.js';

let server;
let browser;
before(async () => {
  server = await startServer({ '/vite/': join(root, 'target/vite-app/dist') });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const open = (path, init) => openPage(browser, `${server.url}${path}`, { init });
const posts = (path) => postsTo(server, path);
const submit = (page) => submitForm(server, page);

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

/** Opens envelopes with fieldseal-core (native, feature `open`) and the vectors' test keys. */
function openNatively(envelopes) {
  const out = execFileSync('cargo', ['run', '-q', '-p', 'fieldseal-core', '--example', 'open_envelopes'], {
    cwd: root,
    input: `${envelopes.join('\n')}\n`,
    encoding: 'utf8',
  });
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

test('card number formatting keeps the caret, and brand events follow the typing', async () => {
  const { page } = await open('/checkout.html');
  const card = page.locator('#card');
  await card.pressSequentially('378282246310005');
  assert.equal(await card.inputValue(), '3782 822463 10005', 'Amex 4-6-5 grouping');
  assert.equal(await card.getAttribute('data-brand'), 'amex');
  await card.fill('');
  await card.pressSequentially('4111111111111111');
  assert.equal(await card.inputValue(), '4111 1111 1111 1111');
  // Put the caret after "4111 1" and type a digit: the grouping shifts, the caret stays after it.
  await card.evaluate((el) => el.setSelectionRange(6, 6));
  await page.keyboard.type('9');
  assert.equal(await card.inputValue(), '4111 1911 1111 1111 1');
  assert.equal(await card.evaluate((el) => el.selectionStart), 7);
  const brands = (await page.evaluate(() => window.events)).filter((e) => e.type === 'brand').map((e) => e.detail.brand);
  assert.deepEqual(brands, ['amex', null, 'visa']);
  assert.equal(await card.getAttribute('autocomplete'), 'cc-number', 'autofill attributes stay');
  assert.equal(await card.evaluate((el) => el.localName), 'input');
  await page.close();
});

test('the expiry is formatted as typed, and deleting or pasting is left alone', async () => {
  const { page } = await open('/checkout.html');
  const exp = page.locator('#exp');
  await exp.pressSequentially('1230');
  assert.equal(await exp.inputValue(), '12 / 30');
  await exp.fill('');
  await exp.pressSequentially('4');
  assert.equal(await exp.inputValue(), '04 / ', 'a month that can only be one digit');
  await exp.pressSequentially('27');
  assert.equal(await exp.inputValue(), '04 / 27');
  // Backspace removes characters without the separator coming back.
  await exp.press('End');
  for (let i = 0; i < 3; i++) await exp.press('Backspace');
  assert.equal(await exp.inputValue(), '04 /');
  // Four-digit years and pasted dates are kept as the user wrote them.
  await exp.fill('');
  await exp.pressSequentially('122030');
  assert.equal(await exp.inputValue(), '12 / 2030');
  await exp.evaluate((el) => {
    el.value = '11/29';
    el.dispatchEvent(new InputEvent('input', { bubbles: true, inputType: 'insertFromPaste', data: '11/29' }));
  });
  assert.equal(await exp.inputValue(), '11/29');
  await page.close();
});

test('the wasm is instantiated by streaming when served as application/wasm', async () => {
  const { page } = await open('/checkout.html', () => {
    window.streamed = [];
    const original = WebAssembly.instantiateStreaming;
    WebAssembly.instantiateStreaming = (source, imports) => {
      const result = original.call(WebAssembly, source, imports);
      result.then(() => window.streamed.push('streamed'), () => window.streamed.push('rejected'));
      return result;
    };
  });
  assert.equal(await page.evaluate(() => document.body.dataset.ready), '1');
  assert.deepEqual(await page.evaluate(() => window.streamed), ['streamed']);
  await page.close();
});

test('validation on blur: aria-invalid, aria-describedby messages and events', async () => {
  const { page } = await open('/checkout.html');
  const card = page.locator('#card');
  await card.pressSequentially('4111111111111112');
  await page.locator('#exp').focus();
  assert.equal(await card.getAttribute('aria-invalid'), 'true');
  const describedby = (await card.getAttribute('aria-describedby')).split(' ');
  assert.equal(describedby[0], 'card-help', 'existing description kept');
  const message = await page.locator(`#${describedby[1]}`).textContent();
  assert.equal(message, 'The card number is not valid. Check it for typing mistakes.');
  await page.fill('#exp', '13/30');
  await page.locator('#cvc').focus();
  assert.equal(await page.locator('#exp').getAttribute('aria-invalid'), 'true');
  await page.fill('#email', 'jane@');
  await page.locator('#cvc').focus();
  const events = await page.evaluate(() => window.events.filter((e) => e.type === 'invalid'));
  assert.deepEqual(events.map((e) => [e.target, e.detail.code]), [
    ['card', 'card_luhn_mismatch'], ['exp', 'expiry_invalid_month'], ['email', 'email_invalid']]);
  // The security code's length follows the card's brand: 4 digits for Amex.
  await card.fill('');
  await card.pressSequentially('378282246310005');
  await page.fill('#cvc', '123');
  await page.locator('#email').focus();
  assert.equal(await page.locator('#cvc').getAttribute('aria-invalid'), 'true', '3 digits on an Amex');
  await page.fill('#cvc', '1234');
  await page.locator('#email').focus();
  assert.equal(await page.locator('#cvc').getAttribute('aria-invalid'), null, '4 digits on an Amex');
  await page.fill('#cvc', '');
  // Correcting the number clears the error as the user types.
  await card.fill('');
  await card.pressSequentially('4111111111111111');
  assert.equal(await card.getAttribute('aria-invalid'), null);
  assert.equal(await page.locator(`#${describedby[1]}`).textContent(), '');
  // Submitting with invalid fields is blocked: nothing is posted.
  const before = posts().length;
  await page.click('#pay');
  await page.waitForTimeout(300);
  assert.equal(posts().length, before, 'no POST while fields are invalid');
  assert.equal(await page.locator('#cvc').getAttribute('aria-invalid'), 'true', 'required and empty');
  assert.ok((await page.evaluate(() => window.events)).some((e) => e.type === 'blocked' && e.detail.reason === 'invalid'));
  await page.close();
});

test('the submitted request carries envelopes and no plaintext, and they open natively', async () => {
  const { page, sent } = await open('/checkout.html');
  await fillValid(page);
  await page.fill('#notes', 'Leave it at the door');
  const { raw, fields } = await submit(page);
  for (const name of ['card', 'exp', 'cvc', 'holder', 'email']) {
    assert.ok(fields[name]?.startsWith('fse1.'), `${name} is an envelope`);
  }
  assert.equal(fields.notes, 'Leave it at the door', 'unprotected fields post as usual');
  assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.panSpaced, SECRETS.email]), []);
  for (const [name, value] of Object.entries(fields)) {
    if (!value.startsWith('fse1.')) assert.deepEqual(leaks(value), [], `${name} leaks`);
  }
  // Every request the page made, not only the form post.
  for (const r of sent) assert.deepEqual(leaks(r.url + r.body, [SECRETS.pan, SECRETS.panSpaced, SECRETS.email]), [], r.url);

  const h = parseEnvelope(fields.card);
  assert.deepEqual(h.hints, { brand: 'visa', bin: '411111', last4: '1111' });
  assert.equal(h.context.session, 'cs_test_1');
  assert.equal(h.context.origin, server.url);
  assert.ok(Math.abs(h.createdAt - Date.now() / 1000) < 60);

  const names = ['card', 'exp', 'cvc', 'holder', 'email'];
  const opened = openNatively(names.map((n) => fields[n]));
  const want = { card: SECRETS.pan, exp: '12 / 30', cvc: SECRETS.cvc, holder: 'Jane Doe', email: SECRETS.email };
  const kinds = { card: 'pan', exp: 'exp', cvc: 'cvc', holder: 'name', email: 'email' };
  names.forEach((n, i) => {
    assert.equal(opened[i].error, undefined, `${n} opens`);
    assert.equal(opened[i].kind, kinds[n]);
    assert.equal(opened[i].value_sha256, sha256(want[n]), `${n} value`);
  });
  assert.equal(opened[0].last4, '1111');
  await page.close();
});

test('a script calling form.submit() still posts envelopes only', async () => {
  const { page } = await open('/checkout.html');
  await fillValid(page);
  const before = posts().length;
  await Promise.all([page.waitForURL('**/pay'), page.evaluate(() => document.querySelector('#checkout').submit())]);
  assert.equal(posts().length, before + 1);
  const fields = Object.fromEntries(new URLSearchParams(posts().at(-1).body));
  for (const name of ['card', 'exp', 'cvc', 'email']) assert.ok(fields[name].startsWith('fse1.'), name);
  assert.deepEqual(leaks(posts().at(-1).body, [SECRETS.pan, SECRETS.panSpaced, SECRETS.email]), []);
  await page.close();
});

test('stray-PAN guard, mode block: the submit stops with a message on the field', async () => {
  const { page } = await open('/checkout.html?stray=block');
  await fillValid(page);
  await page.fill('#notes', `my card is ${SECRETS.panSpaced}`);
  const before = posts().length;
  await page.click('#pay');
  await page.waitForTimeout(300);
  assert.equal(posts().length, before, 'nothing posted');
  const notes = page.locator('#notes');
  assert.equal(await notes.getAttribute('aria-invalid'), 'true');
  const id = await notes.getAttribute('aria-describedby');
  assert.equal(await page.locator(`#${id}`).textContent(), 'A card number can only be entered in the card number field.');
  assert.ok((await page.evaluate(() => window.events)).some((e) => e.type === 'blocked' && e.detail.reason === 'stray_card_number'));
  // Removing it lets the submit through.
  await page.fill('#notes', 'ring twice');
  const { fields } = await submit(page);
  assert.equal(fields.notes, 'ring twice');
  await page.close();
});

test('stray-PAN guard, mode seal: the stray value is sealed under its name', async () => {
  const { page } = await open('/checkout.html?stray=seal');
  await fillValid(page);
  await page.fill('#coupon', SECRETS.pan);
  await page.fill('#notes', `card ${SECRETS.panSpaced} please`);
  const { raw, fields } = await submit(page);
  assert.equal(parseEnvelope(fields.coupon).kind, 'pan');
  assert.equal(parseEnvelope(fields.notes).kind, 'text');
  assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.panSpaced]), []);
  await page.close();
});

test('stray-PAN guard, mode off: other fields are left alone', async () => {
  const { page } = await open('/checkout.html?stray=off');
  await fillValid(page);
  await page.fill('#coupon', SECRETS.pan);
  const { fields } = await submit(page);
  assert.equal(fields.coupon, SECRETS.pan, 'posted as typed: the merchant turned the guard off');
  assert.ok(fields.card.startsWith('fse1.'));
  await page.close();
});

test('detach() restores the form', async () => {
  const { page } = await open('/checkout.html');
  const card = page.locator('#card');
  await card.pressSequentially('4111111111111112');
  await page.locator('#exp').focus();
  assert.equal(await page.locator('.fieldseal-message').count(), 1);
  await page.evaluate(() => window.protection.detach());
  assert.equal(await page.evaluate(() => Object.hasOwn(document.querySelector('#checkout'), 'submit')), false);
  assert.equal(await page.locator('.fieldseal-message').count(), 0);
  assert.equal(await card.getAttribute('aria-invalid'), null);
  assert.equal(await card.getAttribute('aria-describedby'), 'card-help');
  assert.equal(await card.getAttribute('data-brand'), null);
  await card.fill('');
  await card.pressSequentially('4111111111111111');
  assert.equal(await card.inputValue(), SECRETS.pan, 'no more formatting');
  await page.fill('#exp', '12/30');
  await page.fill('#cvc', '737');
  await page.fill('#email', SECRETS.email);
  const { fields } = await submit(page);
  assert.equal(fields.card, SECRETS.pan, 'detached: the form posts as it did before protect()');
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-fieldseal-envelope]').length), 0);
  await page.close();
});

test('a page with a strict CSP works and reports no violation', async () => {
  const reportsBefore = server.cspReports.length;
  const { page } = await open('/checkout.html?csp=1');
  const csp = (await page.request.get(`${server.url}/checkout.html?csp=1`)).headers()['content-security-policy'];
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  await fillValid(page);
  const violations = await page.evaluate(() => window.violations);
  const { fields } = await submit(page);
  assert.ok(fields.card.startsWith('fse1.'), 'the wasm ran under the CSP');
  assert.deepEqual(violations, []);
  assert.deepEqual(server.cspReports.slice(reportsBefore), []);

  // Control: the same CSP does report a violation when a page breaks it (an inline script), so
  // the empty list above means something.
  const { page: bad } = await open('/readme.html?csp=1');
  const deadline = Date.now() + 5000;
  while (server.cspReports.length === reportsBefore && Date.now() < deadline) await bad.waitForTimeout(50);
  assert.ok(server.cspReports.length > reportsBefore, 'an inline script is reported');
  await bad.close();
  await page.close();
});

test('the README snippet works as shown', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const page = readFileSync(join(root, 'tests/browser/pages/readme.html'), 'utf8');
  const snippet = page.split('<!-- readme:begin -->\n')[1].split('<!-- readme:end -->')[0];
  assert.ok(readme.includes(`\`\`\`html\n${snippet}\`\`\``), 'README shows exactly the tested page');
  assert.ok(snippet.trim().split('\n').length < 15, 'under 15 lines');

  const { page: p } = await open('/readme.html');
  await p.waitForFunction(() => document.querySelector('input[autocomplete="cc-number"]'));
  // protect() ran once the card number is formatted while typing.
  const card = p.locator('input[autocomplete="cc-number"]');
  await p.waitForTimeout(200);
  await card.pressSequentially(SECRETS.pan);
  await p.waitForFunction(() => document.querySelector('input[autocomplete="cc-number"]').value.includes(' '));
  await p.fill('input[autocomplete="cc-exp"]', '12/30');
  await p.fill('input[autocomplete="cc-csc"]', SECRETS.cvc);
  await p.fill('input[autocomplete="email"]', SECRETS.email);
  const before = posts().length;
  await Promise.all([p.waitForURL('**/pay'), p.click('button')]);
  const fields = Object.fromEntries(new URLSearchParams(posts().at(-1).body));
  assert.equal(posts().length, before + 1);
  assert.deepEqual(Object.keys(fields).sort(), ['card', 'cvc', 'email', 'exp']);
  for (const v of Object.values(fields)) assert.ok(v.startsWith('fse1.'));
  await p.close();
});

test('a page built with Vite 7 works', async () => {
  // An app that installs the package as a dependency would: node_modules/fieldseal holds
  // package.json and dist/, and the app imports 'fieldseal'.
  const app = appWithPackage('vite-app', 'tests/browser/vite-app');
  const { build, version } = await import('vite');
  assert.match(version, /^7\./);
  await build({ root: app, base: '/vite/', logLevel: 'warn', build: { outDir: join(app, 'dist'), emptyOutDir: true } });
  const built = readFileSync(join(app, 'dist/index.html'), 'utf8');
  assert.ok(!built.includes('/fieldseal/'), 'bundled, not loaded from the self-hosted copy');

  const { page } = await open('/vite/');
  await fillValid(page);
  const { raw, fields } = await submit(page);
  assert.ok(fields.card.startsWith('fse1.'));
  assert.ok(fields.email.startsWith('fse1.'));
  assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.panSpaced, SECRETS.email]), []);
  const wasmRequests = server.requests.filter((r) => r.path.startsWith('/vite/') && r.path.endsWith('.wasm'));
  assert.ok(wasmRequests.length >= 1, 'the bundled wasm asset was fetched');
  await page.close();
});

test('fails closed: an error while checking or sealing stops the submit', async () => {
  const { page } = await open('/checkout.html');
  await fillValid(page);
  await page.fill('#notes', 'ring twice');
  await page.evaluate(() => {
    window.sealer.containsCardNumber = () => {
      throw new Error('wasm trapped');
    };
  });
  const before = posts().length;
  await page.click('#pay');
  await page.waitForTimeout(300);
  assert.equal(posts().length, before, 'nothing posted');
  assert.ok((await page.evaluate(() => window.events)).some((e) => e.type === 'error'));
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-fieldseal-envelope]').length), 0);
  await page.close();
});

test('detach() from a sealed handler still posts envelopes only', async () => {
  const { page } = await open('/checkout.html');
  await fillValid(page);
  await page.evaluate(() => {
    document.querySelector('#checkout').addEventListener('fieldseal:sealed', () => window.protection.detach());
  });
  const { raw, fields } = await submit(page);
  for (const name of ['card', 'exp', 'cvc', 'email']) assert.ok(fields[name].startsWith('fse1.'), name);
  assert.deepEqual(leaks(raw), []);
  await page.close();
});

test('fields added after protect() are formatted, validated and sealed; removed fields are left out', async () => {
  const { page } = await open('/checkout.html');
  await fillValid(page);
  await page.evaluate(() => {
    const form = document.querySelector('#checkout');
    // A second e-mail field and a card number field rendered late (a framework's re-render).
    const extra = document.createElement('input');
    extra.id = 'email2';
    extra.name = 'email2';
    extra.setAttribute('autocomplete', 'email');
    form.prepend(extra);
    const card2 = document.createElement('input');
    card2.id = 'card2';
    card2.name = 'card2';
    card2.dataset.seal = 'pan';
    form.prepend(card2);
    // A required field that goes away must not block the submit.
    const gone = document.createElement('input');
    gone.name = 'phone_removed';
    gone.setAttribute('autocomplete', 'tel');
    gone.required = true;
    form.prepend(gone);
  });
  await page.evaluate(() => document.querySelector('[name=phone_removed]').remove());
  // Formatting reaches the late card field as soon as it is in the form.
  await page.locator('#card2').pressSequentially('4111111111111111');
  assert.equal(await page.inputValue('#card2'), SECRETS.panSpaced);
  // Validation too: an invalid late e-mail blocks the submit.
  await page.fill('#email2', 'not-an-email');
  const before = posts().length;
  await page.click('#pay');
  await page.waitForTimeout(200);
  assert.equal(posts().length, before, 'blocked');
  assert.equal(await page.getAttribute('#email2', 'aria-invalid'), 'true');
  await page.fill('#email2', SECRETS.email);
  const { raw, fields } = await submit(page);
  for (const name of ['card', 'card2', 'email', 'email2']) assert.ok(fields[name]?.startsWith('fse1.'), name);
  assert.ok(!('phone_removed' in fields));
  assert.deepEqual(leaks(raw), []);
  await page.close();
});

test('paths that skip the submit event never see plaintext', async () => {
  const { page } = await open('/checkout.html?stray=block');
  await fillValid(page);
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  // new FormData(form) before any submit: protected fields and stray card numbers are left out.
  const entries = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).entries()));
  assert.deepEqual(leaks(JSON.stringify(entries)), []);
  const names = entries.map(([name]) => name);
  assert.ok(!names.includes('card') && !names.includes('notes'), `left out: ${names.join(', ')}`);
  // The native submit, bypassing the submit event and the override.
  const before = posts().length;
  await Promise.all([
    page.waitForURL('**/pay'),
    page.evaluate(() => HTMLFormElement.prototype.submit.call(document.querySelector('#checkout'))),
  ]);
  assert.equal(posts().length, before + 1);
  assert.deepEqual(leaks(posts().at(-1).body), []);
  await page.close();
});

test('a form with a control named "submit" is protected and posts envelopes only', async () => {
  const { page } = await open('/checkout.html');
  const ok = await page.evaluate(() => {
    const form = document.createElement('form');
    form.action = '/pay';
    form.method = 'post';
    form.innerHTML = '<input name="card" autocomplete="cc-number"><input type="submit" name="submit" value="Pay">';
    document.body.append(form);
    window.protection.detach();
    window.second = window.sealer.protect(form, { strayPan: 'block' });
    form.querySelector('[name=card]').value = '4111111111111111';
    return true;
  });
  assert.equal(ok, true, 'protect() did not throw');
  const before = posts().length;
  await Promise.all([page.waitForURL('**/pay'), page.click('input[type=submit][name=submit]')]);
  assert.equal(posts().length, before + 1);
  const fields = Object.fromEntries(new URLSearchParams(posts().at(-1).body));
  assert.ok(fields.card.startsWith('fse1.'));
  assert.deepEqual(leaks(posts().at(-1).body), []);
  await page.close();
});
