// Hosted fields in Chromium, with the vault (the real binary, serving the frames from dist/) and
// the merchant's page on two different origins (http://localhost:V and http://127.0.0.1:M): the
// README snippet; a checkout whose envelopes the vault tokenizes; a hostile script on the
// merchant's page that reads the DOM, listens to every message and port, overrides postMessage,
// logs keys and tries to reach into the frames; framing from an origin the vault does not list;
// keyboard, labels and announced errors across frames; the appearance object; resize. Every
// request the merchant's page makes and every message it receives is searched for the card number
// and the CVC, with and without spaces.
// Needs `npm run build` and the vault binary (built here with `cargo build -p fieldseal-vault`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildVault, startVault } from '../../demo/vault.mjs';
import { launchChromium, postsTo, root, startServer } from './harness.mjs';

const PAN = '4242424242424242';
const PAN_SPACED = '4242 4242 4242 4242';
const CVC = '739';
const SEARCHED = [PAN, PAN_SPACED, CVC];

let merchant;
let other;
let vault;
let vaultUrl;
let browser;
let dataDir;
const pagesDir = join(root, 'target', 'hosted-pages');

before(async () => {
  // The README page with the test's vault in place of https://vault.example.
  mkdirSync(pagesDir, { recursive: true });
  merchant = await startServer({ '/hosted/': pagesDir });
  other = await startServer({ '/hosted/': pagesDir });
  dataDir = mkdtempSync(join(tmpdir(), 'fieldseal-hosted-'));
  // A self-hosted font on the vault: not a real font, so the browser refuses it once fetched.
  mkdirSync(join(dataDir, 'fonts'));
  writeFileSync(join(dataDir, 'fonts', 'Brand-Sans.woff2'), 'not a font');
  vault = await startVault({ bin: buildVault({ quiet: true }), dataDir, fieldsOrigins: [merchant.url], fieldsFontsDir: join(dataDir, 'fonts') });
  // Another host name than the merchant's: another origin and another site.
  vaultUrl = vault.url.replace('127.0.0.1', 'localhost');
  const readme = readFileSync(join(root, 'tests/browser/pages/hosted-readme.html'), 'utf8');
  writeFileSync(join(pagesDir, 'readme.html'), readme.replace('https://vault.example', vaultUrl));
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await merchant?.close();
  await other?.close();
  await vault?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Every form of the secrets a text could hold them in, found outside envelopes. */
function leaks(text) {
  const outside = String(text).replace(/fse1\.[A-Za-z0-9_-]+/g, ' ');
  const forms = (v) => [...new Set([v, encodeURIComponent(v), v.replace(/ /g, '+'), v.replace(/\s/g, '')])];
  return SEARCHED.flatMap(forms).filter((f) => outside.includes(f));
}

/**
 * The secrets in the vault's log, as whole words only: the log is full of numbers and hex (timings
 * such as `elapsed_ms=0.089739`, request ids such as `3e739bd0c41a7f26`), in which three digits
 * like the CVC's occur by chance.
 */
function logLeaks(text) {
  const outside = String(text).replace(/fse1\.[A-Za-z0-9_-]+/g, ' ');
  return SEARCHED.filter((v) => new RegExp(`(?<![\\w.])${v}(?!\\w)`).test(outside));
}

/** Opens a merchant page, recording each request the page (and any frame) makes. */
async function open(path, { init, ready = 'body[data-ready]' } = {}) {
  const page = await browser.newPage();
  if (init) await page.addInitScript(init);
  const requests = [];
  page.on('request', (r) => requests.push((async () => ({ url: r.url(), headers: JSON.stringify(await r.allHeaders().catch(() => ({ unreadable: 'the page closed first' }))), body: r.postData() ?? '', frame: r.frame() === page.mainFrame() }))()));
  await page.goto(`${merchant.url}${path}`);
  if (ready) await page.waitForSelector(ready, { timeout: 20_000 });
  return { page, requests: () => Promise.all(requests) };
}

const frame = (page, field) => page.frameLocator(`#card-${field === 'pan' ? 'number' : field} iframe`);
const input = (page, field) => frame(page, field).locator('input');

async function fill(page, { pan = PAN, exp = '1230', cvc = CVC } = {}) {
  await input(page, 'pan').pressSequentially(pan);
  await input(page, 'exp').pressSequentially(exp);
  await input(page, 'cvc').pressSequentially(cvc);
}

/** Waits until a frame's input shows `value` (formatting runs in the frame, after the keystroke). */
async function settled(locator, value) {
  const deadline = Date.now() + 5000;
  let now = await locator.inputValue();
  while (now !== value && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    now = await locator.inputValue();
  }
  assert.equal(now, value);
}

const hosted = (query = '') => `/hosted.html?vault=${encodeURIComponent(vaultUrl)}${query}`;

/** Tokenizes `envelopes` at the vault with the checkout key. */
async function tokenize(envelopes) {
  const r = await fetch(`${vault.url}/v1/tokenize`, {
    method: 'POST',
    headers: { authorization: `Bearer ${vault.keys.checkout}`, 'content-type': 'application/json' },
    body: JSON.stringify({ items: envelopes.map((envelope) => ({ envelope })) }),
  });
  return { status: r.status, body: await r.json() };
}

test('the README hosted-fields snippet works as shown', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const pageText = readFileSync(join(root, 'tests/browser/pages/hosted-readme.html'), 'utf8');
  const snippet = pageText.split('<!-- readme:begin -->\n')[1].split('<!-- readme:end -->')[0];
  assert.ok(readme.includes(`\`\`\`html\n${snippet}\`\`\``), 'README shows exactly the tested page');
  assert.ok(snippet.trim().split('\n').length < 15, 'under 15 lines');

  const { page, requests } = await open('/hosted/readme.html', { ready: null });
  await input(page, 'pan').and(page.frameLocator('#card-number iframe').locator('input:not([readonly])')).waitFor({ timeout: 20_000 });
  await input(page, 'exp').and(frame(page, 'exp').locator('input:not([readonly])')).waitFor();
  await input(page, 'cvc').and(frame(page, 'cvc').locator('input:not([readonly])')).waitFor();
  await fill(page);
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.click('button')]);
  const fields = Object.fromEntries(new URLSearchParams(postsTo(merchant).at(-1).body));
  assert.deepEqual(Object.keys(fields).sort(), ['card_cvc', 'card_exp', 'card_number']);
  for (const v of Object.values(fields)) assert.match(v, /^fse1\./);
  const { status, body } = await tokenize(Object.values(fields));
  assert.equal(status, 200, JSON.stringify(body));
  assert.ok(body.results.every((r) => r.ok), JSON.stringify(body));
  for (const r of await requests()) assert.deepEqual(leaks(`${r.url} ${r.headers} ${r.body}`), [], r.url);
  await page.close();
});

test('a checkout: brand, envelopes the vault tokenizes, nothing in the clear in any request', async () => {
  const { page, requests } = await open(hosted());
  assert.equal(await page.getAttribute('body', 'data-ready'), '1');
  // The CVC frame learns each brand from the page: three digits for visa, then four for amex.
  const cvcLength = (n) => frame(page, 'cvc').locator(`input[maxlength="${n}"]`).waitFor({ timeout: 5000 });
  await input(page, 'pan').pressSequentially('4242');
  await cvcLength(3);
  await input(page, 'pan').fill('378282246310005');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'brand' && e.brand === 'amex'));
  assert.equal(await page.getAttribute('#card-number', 'data-brand'), 'amex');
  await settled(input(page, 'pan'), '3782 822463 10005');
  await cvcLength(4);
  await input(page, 'cvc').pressSequentially('12345');
  assert.equal(await input(page, 'cvc').inputValue(), '1234');
  await input(page, 'pan').fill('');
  await input(page, 'cvc').fill('');
  await fill(page);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'brand' && e.brand === 'visa'));
  // Pay pressed twice while sealing: one request.
  const before = postsTo(merchant).length;
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.evaluate(() => {
    const form = document.querySelector('form');
    form.requestSubmit();
    form.requestSubmit();
  })]);
  await page.waitForTimeout(300);
  assert.equal(postsTo(merchant).length, before + 1, 'one POST');
  const fields = Object.fromEntries(new URLSearchParams(postsTo(merchant).at(-1).body));
  for (const k of ['card', 'exp', 'cvc']) assert.match(fields[k], /^fse1\./, k);
  const { status, body } = await tokenize([fields.card, fields.exp, fields.cvc]);
  assert.equal(status, 200, JSON.stringify(body));
  const card = body.results[0];
  assert.equal(card.ok, true, JSON.stringify(card));
  assert.equal(card.last4, '4242');
  assert.equal(card.brand, 'visa');
  const all = await requests();
  assert.ok(all.some((r) => r.url.startsWith(`${vaultUrl}/fields/v1/frame.html`)), 'the frames come from the vault');
  for (const r of all) assert.deepEqual(leaks(`${r.url} ${r.headers} ${r.body}`), [], r.url);
  await page.close();
});

// The hostile script runs in the merchant's page before anything else (an init script): it keeps
// everything it can see in window.stolen.
function hostile() {
  const stolen = [];
  window.stolen = stolen;
  const keep = (what, v) => {
    try {
      stolen.push(`${what}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    } catch {
      stolen.push(`${what}: (unserializable)`);
    }
  };
  // Every message the page receives, and every port handed to it: listened to as well.
  window.addEventListener('message', (e) => {
    keep('message', e.data);
    for (const p of e.ports) {
      p.addEventListener('message', (m) => keep('port', m.data));
      p.start();
      // Asks the frame for what it holds, as the loader would.
      p.postMessage({ type: 'seal', req: 999 });
      // and sends its own init first, with CSS that would fetch from elsewhere.
      p.postMessage({ type: 'init', label: 'x', appearance: { color: 'red', backgroundColor: 'red url(https://evil.example/x)' } });
    }
  }, true);
  // Overridden postMessage, on windows and on ports: what the page sends is recorded.
  const winPost = window.postMessage;
  window.postMessage = function (...a) {
    keep('window.postMessage', a[0]);
    return winPost.apply(this, a);
  };
  const portPost = MessagePort.prototype.postMessage;
  MessagePort.prototype.postMessage = function (...a) {
    keep('port.postMessage', a[0]);
    return portPost.apply(this, a);
  };
  // Keys typed anywhere, and the values of every input, every 50 ms.
  for (const t of ['keydown', 'keypress', 'input', 'paste', 'copy']) document.addEventListener(t, (e) => keep(t, e.key ?? e.data ?? ''), true);
  setInterval(() => {
    for (const el of document.querySelectorAll('input, textarea')) if (el.value) keep('value', el.value);
    // Into the frames: their documents, their windows, script injected by URL.
    for (const f of document.querySelectorAll('iframe')) {
      try {
        keep('contentDocument', f.contentDocument?.body?.innerHTML ?? 'null');
      } catch (e) {
        keep('contentDocument refused', e.name);
      }
      try {
        keep('frame input', f.contentWindow.document.querySelector('input').value);
      } catch (e) {
        keep('contentWindow.document refused', e.name);
      }
      try {
        // Runs in the frame's first, empty document (about:blank, the page's own origin) only.
        keep('eval', `ran in ${f.contentWindow.eval('location.href')}`);
      } catch (e) {
        keep('eval refused', e.name);
      }
    }
  }, 50);
  window.injectIntoFrames = () => {
    for (const f of document.querySelectorAll('iframe')) {
      try {
        f.contentWindow.location.href = 'javascript:parent.postMessage(document.querySelector("input").value, "*")';
      } catch (e) {
        keep('javascript: navigation refused', e.name);
      }
    }
  };
}

test('the state a page gets while the shopper types: empty, incomplete, complete, the brand; no keystroke count, no check digit of a part', async () => {
  const { page } = await open(hosted());
  const pan = async () => (await page.evaluate(() => window.events.filter((e) => e.type === 'change' && e.field === 'pan')))
    .map((e) => [e.empty, e.complete, e.error?.code ?? null, e.brand]);
  await page.evaluate(() => {
    window.events.length = 0;
  });
  // 4012888888888 (13 digits, a Visa length) passes the Luhn check: as typed, it is not complete.
  await input(page, 'pan').pressSequentially('4012888888881881');
  await settled(input(page, 'pan'), '4012 8888 8888 1881');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'change' && e.field === 'pan' && e.complete));
  // `4`, `40`, `401` may still be Elo; `4012` is Visa.
  assert.deepEqual(await pan(), [[false, false, null, null], [false, false, null, 'visa'], [false, true, null, 'visa']], 'three states for sixteen keystrokes');
  // A Luhn error is told when the number cannot grow (a Mastercard's 16 digits), or at the blur.
  await page.evaluate(() => {
    window.events.length = 0;
  });
  await input(page, 'pan').fill('');
  await input(page, 'pan').pressSequentially('5555555555554440');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'invalid' && e.field === 'pan'));
  assert.deepEqual(await pan(), [
    [true, false, null, null], [false, false, null, null], [false, false, null, 'mastercard'], [false, false, 'card_luhn_mismatch', 'mastercard'],
  ]);
  await page.evaluate(() => {
    window.events.length = 0;
  });
  await input(page, 'pan').fill('');
  await input(page, 'pan').pressSequentially('4242424242424241');
  await settled(input(page, 'pan'), '4242 4242 4242 4241');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'change' && e.field === 'pan' && e.complete));
  assert.deepEqual(await pan(), [[true, false, null, null], [false, false, null, null], [false, false, null, 'visa'], [false, true, null, 'visa']], 'a Visa number may be longer: its check digit waits');
  await input(page, 'exp').click();
  await page.waitForFunction(() => window.events.some((e) => e.type === 'invalid' && e.field === 'pan' && e.code === 'card_luhn_mismatch'));
  await page.close();
});

test('protect(): a submit that the form\'s own validation stops after sealing leaves the next submit sealing again', async () => {
  const { page } = await open(hosted());
  await fill(page);
  await page.fill('#after', 'jane@example.com');
  // The e-mail turns invalid while the card is sealed: requestSubmit() then fires no submit event.
  await page.evaluate(() => {
    window.fields.on('sealed', () => {
      if (window.spoiled) return;
      window.spoiled = true;
      document.querySelector('#after').value = 'not an e-mail';
    });
    document.querySelector('#after').addEventListener('invalid', () => {
      window.refused = true;
    });
  });
  const before = postsTo(merchant).length;
  await page.click('#pay');
  await page.waitForFunction(() => window.refused === true);
  assert.equal(postsTo(merchant).length, before, 'nothing posted');
  // Another card, the e-mail fixed: the next submit seals what the frames hold now.
  await input(page, 'pan').fill('');
  await input(page, 'pan').pressSequentially('5555555555554444');
  await page.fill('#after', 'jane@example.com');
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.click('#pay')]);
  const fields = Object.fromEntries(new URLSearchParams(postsTo(merchant).at(-1).body));
  const { status, body } = await tokenize([fields.card]);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.results[0].last4, '4444', 'the second card, sealed at the second submit');
  await page.close();
});

/** seal() in the page, bounded here: its result, its error code, or 'hung'. */
const sealIn = (page, ms = 15_000) => page.evaluate((ms) => Promise.race([
  window.fields.seal().then((envelopes) => envelopes, (e) => e.code),
  new Promise((resolve) => {
    setTimeout(() => resolve('hung'), ms);
  }),
]), ms);

test('a frame that the page navigates away and back is adopted again', async () => {
  const { page } = await open(hosted('&noprotect=1'));
  await fill(page);
  const src = await page.getAttribute('#card-number iframe', 'src');
  await page.evaluate(() => {
    document.querySelector('#card-number iframe').src = 'about:blank';
  });
  await input(page, 'pan').waitFor({ state: 'detached', timeout: 5000 });
  await page.evaluate((url) => {
    document.querySelector('#card-number iframe').src = url;
  }, src);
  // The frame's input appears only with the loader's init: the new document was adopted.
  await frame(page, 'pan').locator('input:not([readonly])').waitFor({ timeout: 20_000 });
  await input(page, 'pan').pressSequentially('5555555555554444');
  const sealed = await sealIn(page);
  assert.match(sealed.pan, /^fse1\./, JSON.stringify(sealed));
  const { status, body } = await tokenize([sealed.pan, sealed.cvc]);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.results[0].last4, '4444');
  await page.close();
});

test('seal() rejects within the timeout when a frame stops answering, and the frame is replaced', async () => {
  const { page } = await open(hosted('&noprotect=1&timeout=3000'));
  await fill(page);
  const src = await page.getAttribute('#card-number iframe', 'src');
  // The frame's document goes away (as after a crash): nothing answers on its port.
  await page.evaluate(() => {
    document.querySelector('#card-number iframe').src = 'about:blank';
  });
  await input(page, 'pan').waitFor({ state: 'detached', timeout: 5000 });
  const started = Date.now();
  assert.equal(await sealIn(page), 'frame_unavailable');
  assert.ok(Date.now() - started < 8000, `rejected after ${Date.now() - started} ms`);
  assert.match(await page.textContent('#card-errors'), /reloaded/);
  // A new frame, with a new nonce, in its place: the card number is typed again and sealed.
  const again = await page.getAttribute('#card-number iframe', 'src');
  assert.notEqual(again, src);
  assert.equal(await page.locator('#card-number iframe').count(), 1);
  await frame(page, 'pan').locator('input:not([readonly])').waitFor({ timeout: 20_000 });
  await input(page, 'pan').pressSequentially(PAN);
  const sealed = await sealIn(page);
  assert.match(sealed.pan, /^fse1\./, JSON.stringify(sealed));
  await page.close();
});

test('the load timeout covers a frame that says hello but never becomes ready', async () => {
  const page = await browser.newPage();
  // The frames' key set never arrives: they say hello, get their init, and never become ready.
  await page.route((url) => url.origin === vaultUrl && url.pathname === '/v1/keys', () => {});
  await page.goto(`${merchant.url}${hosted('&timeout=3000&noprotect=1')}`);
  await page.waitForSelector('body[data-ready]', { timeout: 20_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), 'failed');
  assert.ok(await page.evaluate(() => window.events.some((e) => e.type === 'error' && e.code === 'frame_unavailable')));
  assert.equal(await frame(page, 'pan').locator('input[readonly]').count(), 1, 'the frame was adopted (its input comes with init), not ready');
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  await page.close();
});

test('a hello from the vault\'s origin counts only from the field\'s own frame and with its nonce', async () => {
  const { page } = await open(hosted('&noprotect=1&timeout=3000'));
  await fill(page);
  await page.evaluate(() => {
    window.hellos = [];
    window.addEventListener('message', (e) => {
      if (e.data?.type === 'fieldseal:hello') window.hellos.push({ id: e.data.id, forged: e.source === document.getElementById('forged')?.contentWindow });
    });
  });
  // Another frame of the vault's, made by a page script with the card number frame's URL and
  // nonce: the vault's origin, the right nonce, another window.
  await page.evaluate(() => {
    const f = document.createElement('iframe');
    f.id = 'forged';
    f.src = document.querySelector('#card-number iframe').src;
    document.body.append(f);
  });
  await page.waitForFunction(() => window.hellos.some((h) => h.forged));
  const sealed = await sealIn(page);
  assert.match(sealed.pan, /^fse1\./, `still the real frame: ${JSON.stringify(sealed)}`);
  assert.equal(await page.frameLocator('#forged').locator('input').count(), 0, 'the forged frame got no init');
  // The card number's own frame, navigated by the script to a frame URL with another nonce: the
  // right window, the vault's origin, a nonce the loader did not make.
  const forgedId = 'Forged-nonce-0123456789';
  await page.evaluate((id) => {
    const real = document.querySelector('#card-number iframe');
    real.src = real.src.replace(/#.*/, `#${id}`).replace('field=pan', 'x=1&field=pan');
  }, forgedId);
  await page.waitForFunction((id) => window.hellos.some((h) => h.id === id), forgedId);
  assert.equal(await sealIn(page), 'frame_unavailable', 'no answer from a frame the loader did not adopt');
  await page.close();
});

test('a hostile script on the merchant page gets no card number or CVC', async () => {
  const { page, requests } = await open(hosted(), { init: hostile });
  assert.equal(await page.getAttribute('body', 'data-ready'), '1');
  await fill(page, { pan: PAN });
  await page.evaluate(() => window.injectIntoFrames());
  await page.waitForTimeout(300);
  // The frames are still the vault's and still hold the number: the injection did nothing.
  assert.equal(await input(page, 'pan').inputValue(), PAN_SPACED);
  const sealed = await page.evaluate(() => window.fields.seal());
  assert.match(sealed.pan, /^fse1\./);
  await page.waitForTimeout(200);
  const got = await page.evaluate(() => window.stolen);
  assert.ok(got.some((s) => s.startsWith('contentWindow.document refused: SecurityError')), 'the frame document is out of reach');
  assert.ok(got.some((s) => s.startsWith('eval refused')), 'no eval in the frame');
  assert.deepEqual(got.filter((s) => /^eval: ran in (?!about:blank$)|^frame input/.test(s)), [], 'nothing ran in, or was read from, the vault\'s frames');
  assert.ok(!got.some((s) => /^(keydown|keypress|input|paste): ./.test(s)), 'no key event of the frames reaches the page');
  assert.ok(got.some((s) => s.startsWith('message: {"type":"fieldseal:hello"')), 'the listener saw the handshake');
  assert.ok(got.some((s) => s.startsWith('port: {"type":"sealed"')), 'and envelopes, as the page may');
  assert.ok(got.some((s) => s.startsWith('port: {"type":"state"')));
  assert.ok(got.some((s) => s.startsWith('port: {"type":"error","code":"appearance_invalid"')), 'the frame checks the appearance itself');
  assert.equal(await input(page, 'pan').evaluate((el) => getComputedStyle(el).backgroundImage), 'none');
  assert.deepEqual(leaks(got.join('\n')), [], `nothing the hostile script saw holds the number or the CVC: ${got.filter((g) => leaks(g).length).join(' | ')}`);
  // The whole checkout still works, and posts envelopes only.
  await Promise.all([page.waitForURL('**/pay', { timeout: 10_000 }), page.click('#pay')]);
  const fields = Object.fromEntries(new URLSearchParams(postsTo(merchant).at(-1).body));
  for (const k of ['card', 'exp', 'cvc']) assert.match(fields[k], /^fse1\./, k);
  for (const r of await requests()) assert.deepEqual(leaks(`${r.url} ${r.headers} ${r.body}`), [], r.url);
  // The vault's log neither.
  assert.deepEqual(logLeaks(readFileSync(vault.log, 'utf8')), []);
  await page.close();
});

test('a page on an origin the vault does not list cannot frame the fields', async () => {
  // The frame URL claims the listed merchant origin: the CSP's frame-ancestors stops it.
  const page = await browser.newPage();
  const blocked = [];
  page.on('console', (m) => blocked.push(m.text()));
  await page.goto(`${other.url}/hosted.html?vault=${encodeURIComponent(vaultUrl)}&timeout=3000&noprotect=1`);
  await page.waitForSelector('body[data-ready]', { timeout: 20_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), 'failed', 'the loader reports the frames unavailable');
  assert.ok((await page.textContent('#card-errors')).length > 0, 'the page says so');
  assert.ok(await page.evaluate(() => window.events.some((e) => e.type === 'error' && e.code === 'frame_unavailable')));
  // Claiming the listed origin in the URL does not help: the browser refuses to render it.
  await page.evaluate(({ vault, listed }) => {
    const f = document.createElement('iframe');
    f.id = 'forged';
    f.src = `${vault}/fields/v1/frame.html?field=pan&origin=${encodeURIComponent(listed)}#abcdefghijklmnopqrstuv`;
    document.body.append(f);
  }, { vault: vaultUrl, listed: merchant.url });
  await page.waitForTimeout(1000);
  const forged = page.frames().find((f) => f.url().includes('frame.html') || f.url().startsWith('chrome-error'));
  const inputs = forged ? await forged.locator('input').count().catch(() => 0) : 0;
  assert.equal(inputs, 0, 'no card input rendered in a frame the vault did not allow');
  assert.ok(blocked.some((t) => t.includes(`frame-ancestors ${merchant.url}`)), `the browser refused it for the vault's frame-ancestors: ${blocked.join(' | ')}`);
  // The vault itself refuses the page to an unlisted origin.
  const r = await fetch(`${vault.url}/fields/v1/frame.html?field=pan&origin=${encodeURIComponent(other.url)}`);
  assert.equal(r.status, 403);
  assert.match(r.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  await page.close();
});

test('a handshake from a frame of another origin than the vault is ignored', async () => {
  // The vault URL points at a server that serves no frame: the real frames never say hello.
  const page = await browser.newPage();
  await page.goto(`${merchant.url}/hosted.html?vault=${encodeURIComponent(other.url)}&timeout=4000&noprotect=1`);
  const src = await page.getAttribute('#card-number iframe', 'src');
  const id = new URL(src).hash.slice(1);
  // A frame of a third origin (localhost instead of 127.0.0.1) forges the number frame's hello,
  // with its nonce, and a second one from the page itself.
  const forger = `${merchant.url.replace('127.0.0.1', 'localhost')}/forged-hello.html?field=pan&id=${id}`;
  await page.evaluate((url) => {
    const f = document.createElement('iframe');
    f.src = url;
    document.body.append(f);
    const { port1, port2 } = new MessageChannel();
    window.answered = [];
    port1.onmessage = (e) => window.answered.push(e.data?.type);
    window.postMessage({ type: 'fieldseal:hello', v: 1, id: new URL(document.querySelector('#card-number iframe').src).hash.slice(1), field: 'pan' }, '*', [port2]);
  }, forger);
  await page.waitForSelector('body[data-ready]', { timeout: 20_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), 'failed', 'no frame was taken as the vault\'s');
  assert.ok(merchant.requests.some((r) => r.path === '/forged-hello.js'), 'the forger ran');
  assert.deepEqual(merchant.requests.filter((r) => r.path === '/forged-answered'), [], 'the loader never answered the forger');
  assert.deepEqual(await page.evaluate(() => window.answered), [], 'nor the page\'s own forged hello');
  await page.close();
});

test('keyboard, labels and errors across frames', async () => {
  // Focus moves between out-of-process frames asynchronously, and headless Chromium now and then
  // leaves a Tab between two frames unanswered within the wait (seen in two of six runs here, at a
  // different frame each time). The walk is tried up to three times, each on a fresh page: a real
  // regression fails all three, and each failure is printed.
  let failure;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const { page } = await open(hosted());
    try {
      await keyboardWalk(page);
      return;
    } catch (e) {
      failure = e;
      console.log(`keyboard walk, attempt ${attempt}: ${e.message.split('\n')[0]}`);
    } finally {
      await page.close();
    }
  }
  throw failure;
});

/** The keyboard, label and error checks of one hosted-fields page. */
async function keyboardWalk(page) {
  assert.equal(await page.getAttribute('#card-number iframe', 'title'), 'Card number', 'the frame is named by the label');
  assert.equal(await input(page, 'pan').getAttribute('aria-label'), 'Card number');
  assert.equal(await input(page, 'pan').getAttribute('autocomplete'), 'cc-number');
  // Tab from the page's input into the card number, then on to the expiry, the CVC, out again.
  await page.focus('#before');
  await page.keyboard.press('Tab');
  // Focus crosses into another process's frame: type only once it has arrived, or the first
  // keystrokes go to the page.
  await frame(page, 'pan').locator('input:focus').waitFor({ timeout: 5000 });
  await page.keyboard.type('4242424242424241');
  await settled(input(page, 'pan'), '4242 4242 4242 4241');
  await page.keyboard.press('Tab');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'invalid' && e.field === 'pan'));
  assert.equal(await input(page, 'pan').getAttribute('aria-invalid'), 'true');
  assert.match(await page.textContent('#card-errors'), /not valid/, 'the error is announced by the page');
  assert.equal(await page.getAttribute('#card-errors', 'aria-live'), 'polite');
  await frame(page, 'exp').locator('input:focus').waitFor({ timeout: 5000 });
  await page.keyboard.type('1230');
  await settled(input(page, 'exp'), '12 / 30');
  await page.keyboard.press('Tab');
  await frame(page, 'cvc').locator('input:focus').waitFor({ timeout: 5000 });
  await page.keyboard.type(CVC);
  await settled(input(page, 'cvc'), CVC);
  await page.keyboard.press('Tab');
  await page.waitForFunction(() => document.activeElement.id === 'after', null, { timeout: 5000 });
  await page.keyboard.press('Shift+Tab');
  await frame(page, 'cvc').locator('input:focus').waitFor({ timeout: 5000 }); // Shift+Tab goes back into the frame
  // Clicking the label focuses its frame.
  await page.click('label[for="card-exp"]');
  // The focus request crosses to the frame by message: waited for, not read at once.
  await frame(page, 'exp').locator('input:focus').waitFor({ timeout: 5000 });
  // Fixing the number clears the error and the message.
  await input(page, 'pan').fill('');
  await input(page, 'pan').pressSequentially(PAN);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'valid' && e.field === 'pan'));
  await page.waitForFunction(() => document.getElementById('card-errors').textContent === '', null, { timeout: 5000 });
  // seal() with an empty field refuses and says which.
  await input(page, 'cvc').fill('');
  const err = await page.evaluate(() => window.fields.seal().then(() => null, (e) => ({ code: e.code, fields: e.fields })));
  assert.equal(err.code, 'invalid');
  assert.deepEqual(Object.keys(err.fields), ['cvc']);
}

test('appearance: checked property by property, applied in the frame, frames resize', async () => {
  const bad = await open(hosted(`&appearance=${encodeURIComponent(JSON.stringify({ color: 'red; background: url(https://evil.example/)' }))}`));
  assert.deepEqual(await bad.page.evaluate(() => window.mountError?.code), 'appearance_invalid');
  assert.equal(await bad.page.locator('iframe').count(), 0, 'nothing mounted');
  await bad.page.close();
  for (const wrong of [{ fontFamily: 'Comic Sans"; x' }, { fontSize: '400px' }, { unknown: '1px' }, { font: { family: 'X', file: '../x.woff2' } }, { padding: 'calc(1px)' }]) {
    const p = await open(hosted(`&appearance=${encodeURIComponent(JSON.stringify(wrong))}`));
    assert.equal(await p.page.evaluate(() => window.mountError?.code), 'appearance_invalid', JSON.stringify(wrong));
    await p.page.close();
  }
  const look = { color: '#112233', fontSize: '24px', borderRadius: '12px', invalidColor: 'rgb(200, 0, 0)', padding: '14px 16px', fontFamily: 'Georgia' };
  const { page } = await open(hosted(`&appearance=${encodeURIComponent(JSON.stringify(look))}`));
  const style = await input(page, 'pan').evaluate((el) => {
    const s = getComputedStyle(el);
    return { color: s.color, fontSize: s.fontSize, radius: s.borderTopLeftRadius, family: s.fontFamily };
  });
  assert.deepEqual(style, { color: 'rgb(17, 34, 51)', fontSize: '24px', radius: '12px', family: 'Georgia, system-ui, sans-serif' });
  await page.waitForFunction(() => parseInt(document.querySelector('#card-number iframe').style.height, 10) > 50);
  const height = await page.$eval('#card-number iframe', (f) => f.getBoundingClientRect().height);
  const inner = await frame(page, 'pan').locator('html').evaluate((el) => el.getBoundingClientRect().height);
  assert.equal(Math.round(height), Math.ceil(inner), 'the frame is as tall as its content');
  await page.close();
});

test('appearance: a self-hosted font comes from the vault, and a font that fails is reported', async () => {
  const look = { font: { family: 'Brand Sans', file: 'Brand-Sans.woff2', weight: 500 }, fontFamily: 'Georgia' };
  const { page, requests } = await open(hosted(`&appearance=${encodeURIComponent(JSON.stringify(look))}`));
  assert.equal(await page.getAttribute('body', 'data-ready'), '1');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'error' && e.code === 'font_unavailable'), null, { timeout: 10_000 });
  const family = await input(page, 'pan').evaluate((el) => getComputedStyle(el).fontFamily);
  assert.equal(family, '"Brand Sans", Georgia, system-ui, sans-serif');
  const fonts = (await requests()).filter((r) => new URL(r.url).pathname.endsWith('.woff2'));
  assert.ok(fonts.length > 0);
  for (const r of fonts) assert.equal(new URL(r.url).pathname, '/fields/v1/fonts/Brand-Sans.woff2', r.url);
  for (const r of fonts) assert.ok(r.url.startsWith(vaultUrl), r.url);
  await page.close();
});

test('the frame page: strict CSP, SRI on its files, nothing third-party', async () => {
  const r = await fetch(`${vault.url}/fields/v1/frame.html?field=pan&origin=${encodeURIComponent(merchant.url)}`);
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, new RegExp(`frame-ancestors ${merchant.url.replace(/[.]/g, '\\.')}$`));
  const html = await r.text();
  const srcs = [...html.matchAll(/(?:src|href|content)="([^"]+)"/g)].map((m) => m[1]).filter((s) => /\.(js|css|wasm)/.test(s));
  assert.equal(srcs.length, 3);
  for (const s of srcs) assert.ok(!/^(https?:)?\/\//.test(s), `${s} is the vault's own`);
  for (const m of html.matchAll(/integrity="(sha256-[^"]+)"/g)) assert.match(m[1], /^sha256-[A-Za-z0-9+/]{43}=$/);
  assert.doesNotMatch(html, /<script>|<style|style=/, 'no inline script or style');
});
