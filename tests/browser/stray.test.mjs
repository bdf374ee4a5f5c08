// Stray data the guard used to miss: card and CVC inputs known only by name or id, expiry
// <select>s, a card number split over several inputs, 19-digit numbers, brands outside the first
// eight, `/`, `_` and a leading `+` as separators; and a polluted Object.prototype, which must not
// turn the guard off. Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaks, openPage, postsTo, SECRETS, submitForm, withBrowser } from './harness.mjs';
import { parseEnvelope } from '../../js/envelope.js';

const env = withBrowser();

const open = (query = '', init) => openPage(env.browser, `${env.server.url}/stray.html${query}`, { init });

/** Clicks Pay and checks that nothing was posted and the submit was blocked for a card number. */
async function assertBlocked(page, what) {
  const before = postsTo(env.server).length;
  await page.click('#pay');
  await page.waitForTimeout(250);
  assert.equal(postsTo(env.server).length, before, `${what}: nothing posted`);
  const blocked = (await page.evaluate(() => window.events)).filter((e) => e.type === 'blocked');
  assert.equal(blocked.at(-1)?.detail.reason, 'stray_card_number', what);
}

test('card and CVC inputs known by name or id, and the expiry selects, post as envelopes only', async () => {
  const { page } = await open();
  await page.fill('#card', SECRETS.pan);
  await page.fill('#cvv', SECRETS.cvc);
  await page.fill('#ccnum', '5555555555554444');
  await page.selectOption('#exp-month', '12');
  await page.selectOption('#exp-year', '2030');
  const { raw, fields } = await submitForm(env.server, page);
  const kinds = Object.fromEntries(['payment[card_number]', 'cvv', 'second', 'exp_month', 'exp_year']
    .map((name) => [name, fields[name] && parseEnvelope(fields[name]).kind]));
  assert.deepEqual(kinds, { 'payment[card_number]': 'pan', cvv: 'cvc', second: 'pan', exp_month: 'text', exp_year: 'text' });
  assert.equal(fields.qty, '2', 'unprotected fields post as usual');
  assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.cvc, '5555555555554444']), []);
  await page.close();
});

test('a CVC input known by name is validated like a marked one', async () => {
  const { page } = await open();
  await page.fill('#card', '378282246310005');
  await page.fill('#cvv', '737');
  const before = postsTo(env.server).length;
  await page.click('#pay');
  await page.waitForTimeout(250);
  assert.equal(postsTo(env.server).length, before, 'an Amex needs 4 digits');
  assert.equal(await page.getAttribute('#cvv', 'aria-invalid'), 'true');
  await page.close();
});

test('a card number split over four inputs is blocked, and sealed part by part in seal mode', async () => {
  const { page } = await open();
  for (const [i, part] of ['4111', '1111', '1111', '1111'].entries()) await page.fill(`#part${i + 1}`, part);
  await assertBlocked(page, 'split number');
  assert.equal(await page.getAttribute('#part1', 'aria-invalid'), 'true');
  const entries = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).keys()));
  assert.ok(!entries.some((n) => n.startsWith('part')), `new FormData leaves the parts out: ${entries}`);
  await page.close();

  const { page: sealing } = await open('?stray=seal');
  for (const [i, part] of ['4111', '1111', '1111', '1111'].entries()) await sealing.fill(`#part${i + 1}`, part);
  const { fields } = await submitForm(env.server, sealing);
  for (const n of ['part1', 'part2', 'part3', 'part4']) assert.equal(parseEnvelope(fields[n]).kind, 'text', n);
  assert.equal(fields.qty, '2', 'a lone short number is not part of a card number');
  await sealing.close();
});

test('19-digit numbers, other brands and other separators in free text are blocked', async () => {
  const { page } = await open();
  for (const text of [
    'card 6011 1111 1111 1111 110', // 19 digits
    'card 8800000000000005', // no brand in the card rules, Luhn-valid
    'mir 2200 0000 0000 0004',
    'rupay 6073849700004947',
    'troy 979200000000000003',
    '4111/1111/1111/1111',
    '4111_1111_1111_1111',
    '+4111111111111111',
  ]) {
    await page.fill('#notes', text);
    await assertBlocked(page, text);
  }
  // Innocent text still goes through.
  await page.fill('#notes', 'flat 4, door code 1234, call +44 20 7946 0958');
  const { fields } = await submitForm(env.server, page);
  assert.equal(fields.notes, 'flat 4, door code 1234, call +44 20 7946 0958');
  await page.close();
});

test('a polluted Object.prototype does not turn the guard or the protection off', async () => {
  const { page } = await open('', () => {
    Object.prototype.strayPan = 'off';
  });
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  await assertBlocked(page, 'strayPan inherited from Object.prototype');
  // A field whose name is an Object.prototype member is not taken for a card field.
  await page.evaluate(() => {
    const el = document.createElement('input');
    el.name = 'constructor';
    el.id = 'ctor';
    document.querySelector('#checkout').append(el);
  });
  await page.fill('#notes', 'ring twice');
  await page.fill('#ctor', 'hello');
  const { fields } = await submitForm(env.server, page);
  assert.equal(fields.constructor, 'hello');
  await page.close();
});

test('hidden inputs are not card fields by name or id; card[number] and cvv[] are; gift[card][number] is not', async () => {
  const { page } = await open();
  await page.evaluate(() => document.querySelector('#checkout').insertAdjacentHTML('beforeend',
    '<input type="hidden" name="saved[card_number]" value="tok_5f2a"><input type="hidden" id="cvc" name="cvc_ref" value="ref-1">'
    + '<input id="card2" name="card[number]"><input id="cvv2" name="cvv[]">'
    + '<input id="gift" name="gift[card][number]"><input id="loyalty" name="loyalty[card][number]">'
    + '<input id="member" name="member[card][no]"><input id="giftcard" name="giftcard[card_number]">'));
  await page.fill('#card', SECRETS.pan);
  await page.fill('#cvv', SECRETS.cvc);
  await page.fill('#ccnum', '5555555555554444');
  await page.fill('#card2', '4000056655665556');
  await page.fill('#cvv2', '321');
  // Other cards' numbers: as card number fields they would fail the card check and block.
  const others = { gift: 'GIFT-7781-XQ', loyalty: '88120455', member: 'M-20931', giftcard: '6006 4912' };
  for (const [id, v] of Object.entries(others)) await page.fill(`#${id}`, v);
  const { raw, fields } = await submitForm(env.server, page);
  assert.equal(fields['saved[card_number]'], 'tok_5f2a', 'the page\'s hidden input posts as it is');
  assert.equal(fields.cvc_ref, 'ref-1');
  assert.equal(parseEnvelope(fields['card[number]']).kind, 'pan');
  assert.equal(parseEnvelope(fields['cvv[]']).kind, 'cvc');
  assert.deepEqual([fields['gift[card][number]'], fields['loyalty[card][number]'], fields['member[card][no]'], fields['giftcard[card_number]']],
    Object.values(others));
  assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.cvc, '5555555555554444', '4000056655665556', '321']), []);
  await page.close();
});

// A formatted visible input and the raw digits in a hidden one, a common pattern.
const RAW_BEHIND = '<input type="hidden" name="card_number" id="raw"><input type="hidden" name="saved[card_number]" value="tok_5f2a">';

for (const stray of ['block', 'off']) {
  test(`strayPan ${stray}: a hidden input named like a card number field is sealed when it holds one, else left alone`, async () => {
    const { page } = await open(`?stray=${stray}`);
    await page.evaluate((html) => document.querySelector('#checkout').insertAdjacentHTML('beforeend', html), RAW_BEHIND);
    await page.fill('#card', SECRETS.panSpaced);
    await page.evaluate((pan) => {
      document.querySelector('#raw').value = pan;
    }, SECRETS.pan);
    const names = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).keys()));
    assert.ok(!names.includes('card_number'), `new FormData leaves the raw digits out: ${names}`);
    const { raw, fields } = await submitForm(env.server, page);
    assert.equal(parseEnvelope(fields.card_number).kind, 'pan');
    assert.equal(fields['saved[card_number]'], 'tok_5f2a', 'a token is not a card number');
    assert.deepEqual(leaks(raw, [SECRETS.pan, SECRETS.panSpaced]), []);
    await page.close();
  });
}

test('strayPan block: a card number in a field the shopper cannot see or change is sealed, not blocked on', async () => {
  const { page } = await open();
  await page.evaluate((pan) => {
    document.querySelector('#checkout').insertAdjacentHTML('beforeend',
      '<input type="hidden" name="ref" id="ref"><input name="shown" id="shown" style="display:none"><input name="fixed" id="fixed" readonly>');
    for (const id of ['ref', 'shown', 'fixed']) document.querySelector(`#${id}`).value = pan;
  }, SECRETS.pan);
  const { raw, fields } = await submitForm(env.server, page);
  for (const n of ['ref', 'shown', 'fixed']) assert.equal(parseEnvelope(fields[n]).kind, 'pan', n);
  assert.deepEqual(leaks(raw, [SECRETS.pan]), []);
  await page.close();
});

test('hidden inputs and selects are never parts of a split card number; an IMEI is not a card number', async () => {
  const { page } = await open();
  // Joined with the typed input, the hidden inputs' and the select's values would read 4111 1111
  // 1111 1111.
  await page.evaluate(() => document.querySelector('#checkout').insertAdjacentHTML('beforeend',
    '<input type="hidden" name="store" value="4111"><input type="hidden" name="shelf" value="1111">'
    + '<select name="size"><option>1111</option></select><input id="box" name="box">'
    + '<input id="device" name="device">'));
  await page.fill('#box', '1111');
  await page.fill('#device', '35 209900 176148 1');
  const entries = await page.evaluate(() => Array.from(new FormData(document.querySelector('#checkout')).keys()));
  for (const n of ['store', 'shelf', 'size', 'box', 'device']) assert.ok(entries.includes(n), `new FormData keeps ${n}`);
  const { fields } = await submitForm(env.server, page);
  assert.deepEqual([fields.store, fields.shelf, fields.size, fields.box, fields.device], ['4111', '1111', '1111', '1111', '35 209900 176148 1']);
  await page.close();
});

test('the guard reads the form data before the page\'s own formdata listeners on the form', async () => {
  const { page } = await open();
  await page.fill('#card', SECRETS.pan);
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  const seen = await page.evaluate(async () => {
    const { protect } = await import('/fieldseal/index.js');
    const form = document.querySelector('#checkout');
    const out = [];
    // A listener the page added before protect() ran: an analytics script reading the form.
    window.protection.detach();
    form.addEventListener('formdata', (e) => out.push(JSON.stringify(Array.from(e.formData))));
    const now = window.sealer.protect(form);
    new FormData(form);
    now.detach();
    // And while the sealer is still loading.
    const pending = protect(form, new Promise(() => {}));
    new FormData(form);
    pending.detach();
    return out;
  });
  assert.equal(seen.length, 2);
  for (const s of seen) assert.deepEqual(leaks(s, [SECRETS.pan, SECRETS.panSpaced]), [], s);
  await page.close();
});

test('formdata listeners that add a card number, registered before or after protect(), and capture listeners on the document see no card number', async () => {
  const { page } = await open();
  await page.fill('#card', SECRETS.panSpaced);
  await page.fill('#notes', `card ${SECRETS.panSpaced}`);
  const { built, read } = await page.evaluate(async (pan) => {
    const { protect } = await import('/fieldseal/index.js');
    const form = document.querySelector('#checkout');
    const built = [];
    const read = [];
    // A card widget copying its raw number into the form data.
    const add = (e) => e.formData.set('card_number', pan);
    const reader = (e) => read.push(JSON.stringify(Array.from(e.formData)));
    window.protection.detach();
    for (const protecting of [() => window.sealer.protect(form), () => protect(form, new Promise(() => {}))]) {
      for (const before of [true, false]) {
        document.addEventListener('formdata', reader, true);
        if (before) form.addEventListener('formdata', add);
        const p = protecting();
        if (!before) form.addEventListener('formdata', add);
        built.push(JSON.stringify(Array.from(new FormData(form))));
        p.detach();
        form.removeEventListener('formdata', add);
        document.removeEventListener('formdata', reader, true);
      }
    }
    return { built, read };
  }, SECRETS.pan);
  assert.equal(built.length, 4);
  assert.equal(read.length, 4);
  for (const s of [...built, ...read]) assert.deepEqual(leaks(s, [SECRETS.pan, SECRETS.panSpaced]), [], s);
  await page.close();
});
