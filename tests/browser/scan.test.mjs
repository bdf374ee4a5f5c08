// Discovery of unprotected fields: sealer.scan() on a page with a dozen look-alike fields and a
// dozen innocent ones reports exactly the look-alikes, with their kind and what gave them away,
// and none of the protected or innocent fields; protect(form, { warnUnprotected: true }) logs each
// once, without its value. Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaks, SECRETS, withBrowser } from './harness.mjs';

const env = withBrowser();

const LOOK_ALIKES = [
  ['a1', 'pan', 'name'],
  ['cc-cvv', 'cvc', 'id'],
  ['a3', 'pan', 'autocomplete'],
  ['a4', 'email', 'type'],
  ['a5', 'phone', 'type'],
  ['a6', 'pan', 'label'],
  ['a7', 'cvc', 'label'],
  ['a8', 'pan', 'placeholder'],
  ['a9', 'email', 'placeholder'],
  ['a10', 'pan', 'value'],
  ['a11', 'email', 'value'],
  ['a12', 'birth-date', 'autocomplete'],
  ['a13', 'iban', 'label'],
  ['a14', 'phone', 'name'],
].map(([id, kind, reason]) => ({ id, kind, reason }));

test('scan() finds every look-alike field with its kind and reason, and nothing else', async () => {
  const warnings = [];
  const page = await env.browser.newPage();
  page.on('console', (m) => m.type() === 'warning' && warnings.push(m.text()));
  await page.goto(`${env.server.url}/scan.html`);
  await page.waitForSelector('body[data-ready]');
  const found = await page.evaluate(() => window.found());
  assert.deepEqual(found, LOOK_ALIKES);
  const innocent = await page.evaluate(() => Array.from(document.querySelectorAll('[id^="i-"], [id^="p-"]'), (e) => e.id));
  assert.equal(innocent.length, 16, 'a dozen innocent fields, three protected, one marked off');
  for (const id of innocent) assert.ok(!found.some((f) => f.id === id), `${id} is not reported`);

  // warnUnprotected: one warning per field, naming it, never its value.
  assert.equal(warnings.length, LOOK_ALIKES.length, warnings.join('\n'));
  for (const { id, kind } of LOOK_ALIKES) {
    assert.equal(warnings.filter((w) => w.includes(`id="${id}"`) && w.includes(`unprotected ${kind} field`)).length, 1, id);
  }
  assert.deepEqual(leaks(warnings.join('\n'), [SECRETS.pan, SECRETS.panSpaced, SECRETS.email]), []);
  // Protecting the other form too: its look-alikes are protected now, or stay reported when no
  // rule of protect() takes them in (a label or placeholder alone does not mark a field).
  const after = await page.evaluate(() => {
    window.sealer.protect(document.querySelector('#other'));
    return window.found().map((f) => f.id);
  });
  for (const id of ['a1', 'cc-cvv', 'a3', 'a12']) assert.ok(!after.includes(id), `${id} is protected now`);
  assert.ok(after.includes('a6'), 'a card number known only by its label is still reported');
  await page.close();
});
