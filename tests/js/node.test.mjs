// The built package (dist/) in Node, without a DOM: importing it touches no browser global, and
// load() with the wasm bytes gives a working sealer (pool, server time, typed errors, helpers).
// Run `npm run build` first (scripts/test.sh does).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const dist = new URL('../../dist/', import.meta.url);
const doc = JSON.parse(readFileSync(new URL('../vectors/envelope-v1.json', import.meta.url), 'utf8'));
const now = Math.floor(Date.now() / 1000);
const keySet = (serverTime = now) => ({ keys: [doc.keys[0].jwk], server_time: serverTime });
const wasm = () => readFileSync(new URL('wasm/fieldseal_bg.wasm', dist));

test('importing the package in Node touches no DOM global', async () => {
  assert.equal(typeof globalThis.window, 'undefined');
  assert.equal(typeof globalThis.document, 'undefined');
  const trap = (name) => Object.defineProperty(globalThis, name, {
    configurable: true,
    get() {
      throw new Error(`${name} touched at import`);
    },
  });
  trap('window');
  trap('document');
  try {
    const mod = await import(new URL('index.js', dist));
    assert.equal(typeof mod.load, 'function');
    assert.equal(typeof mod.parseEnvelope, 'function');
    assert.equal(typeof mod.FieldsealError, 'function');
  } finally {
    delete globalThis.window;
    delete globalThis.document;
  }
});

test('the exports map resolves the package by name', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.sideEffects, false);
  for (const [entry, target] of Object.entries(pkg.exports)) {
    const file = typeof target === 'string' ? target : target.default;
    assert.doesNotThrow(() => readFileSync(new URL(`../../${file}`, import.meta.url)), `${entry} -> ${file}`);
    if (typeof target === 'object') readFileSync(new URL(`../../${target.types}`, import.meta.url));
  }
  const self = await import('fieldseal');
  assert.equal(typeof self.load, 'function');
  const env = await import('fieldseal/envelope');
  assert.equal(typeof env.parseEnvelope, 'function');
});

test('seal with a prepared context and with an empty pool; contexts are never reused', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  const sealer = await load({ keys: keySet(), wasm: wasm(), poolSize: 2 });
  assert.equal(sealer.keyId, 'test-key-1');
  sealer.prepare();
  assert.equal(sealer.stats.pooled, 2);
  const seen = new Set();
  for (let i = 0; i < 5; i++) {
    const env = sealer.seal('4111 1111 1111 1111', { kind: 'pan', context: { session: 'cs_1' } });
    const h = parseEnvelope(env);
    assert.equal(h.kind, 'pan');
    assert.deepEqual(h.hints, { brand: 'visa', bin: '411111', last4: '1111' });
    assert.equal(h.context.session, 'cs_1');
    assert.equal(h.context.origin, null, 'no origin outside a page');
    assert.ok(!seen.has(h.envelopeId), 'fresh envelope id');
    seen.add(h.envelopeId);
    assert.ok(!seen.has(env));
    seen.add(env);
  }
  const s = sealer.stats;
  assert.equal(s.sealedFromPool, 2);
  assert.equal(s.sealedCold, 3, 'empty pool still seals');
  assert.equal(s.prepared, s.sealedFromPool + s.sealedCold, 'one context per envelope');

  const cold = await load({ keys: JSON.stringify(keySet()), wasm: wasm(), poolSize: 0 });
  parseEnvelope(cold.seal('jane@example.com', { kind: 'email' }));
  assert.equal(cold.stats.sealedCold, 1);
});

test('the pool refills itself when idle', async () => {
  const { load } = await import(new URL('index.js', dist));
  const sealer = await load({ keys: keySet(), wasm: wasm(), poolSize: 3 });
  const deadline = Date.now() + 5000;
  while (sealer.stats.pooled < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(sealer.stats.pooled, 3);
  sealer.seal('123', { kind: 'cvc' });
  assert.equal(sealer.stats.pooled, 2);
  while (sealer.stats.pooled < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(sealer.stats.pooled, 3);
});

test('creation time is the server time, whatever the device clock says', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  // A key set issued by a server whose clock is a day behind this device.
  const serverTime = now - 86_400;
  const sealer = await load({ keys: keySet(serverTime), wasm: wasm() });
  const h = parseEnvelope(sealer.seal('x', { kind: 'text' }));
  assert.ok(Math.abs(h.createdAt - serverTime) <= 2, `${h.createdAt} vs ${serverTime}`);
  assert.ok(Math.abs(sealer.serverNow() - serverTime) <= 2);
});

test('errors are FieldsealErrors with stable codes and no value in the message', async () => {
  const { load, FieldsealError } = await import(new URL('index.js', dist));
  const sealer = await load({ keys: keySet(), wasm: wasm() });
  const code = (fn) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof FieldsealError, `${e}`);
      assert.ok(!e.message.includes('4111'));
      return e.code;
    }
    return 'no error';
  };
  assert.equal(code(() => sealer.seal('4111111111111112', { kind: 'pan' })), 'card_luhn_mismatch');
  assert.equal(code(() => sealer.seal('x', { kind: 'bogus' })), 'seal_unknown_kind');
  assert.equal(code(() => sealer.seal('x', {})), 'seal_unknown_kind');
  assert.equal(code(() => sealer.seal('', { kind: 'text' })), 'seal_empty_value');
  assert.equal(code(() => sealer.seal('x', { kind: 'text', context: { session: 'has space' } })), 'seal_invalid_context');
  await assert.rejects(load({ keys: { keys: [], server_time: now }, wasm: wasm() }), (e) => e instanceof FieldsealError && e.code === 'keyset_empty');
  await assert.rejects(load({ wasm: wasm() }), (e) => e.code === 'keyset_missing');
  const expired = { keys: [doc.keys[0].jwk], server_time: 1_900_000_000 };
  await assert.rejects(load({ keys: expired, wasm: wasm() }), (e) => e.code === 'keyset_expired');
});

test('sealFields seals each value under its name and skips empty ones', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  const sealer = await load({ keys: keySet(), wasm: wasm() });
  const out = sealer.sealFields({
    pan: '5555 5555 5555 4444',
    cvc: '123',
    exp: '12/30',
    contact: { value: 'jane@example.com', kind: 'email' },
    phone: '',
  });
  assert.deepEqual(Object.keys(out), ['pan', 'cvc', 'exp', 'contact']);
  assert.equal(parseEnvelope(out.pan).hints.brand, 'mastercard');
  assert.equal(parseEnvelope(out.contact).kind, 'email');
  assert.equal(parseEnvelope(out.exp).kind, 'exp');
});

test('card helpers and classify come from fieldseal-core', async () => {
  const { load } = await import(new URL('index.js', dist));
  const { card, ...sealer } = await load({ keys: keySet(), wasm: wasm() }).then((s) => ({ card: s.card, s }));
  assert.deepEqual(card.format('378282246310005', 15), { text: '3782 822463 10005', caret: 17, brand: 'amex' });
  assert.deepEqual(card.format('41111', 2), { text: '4111 1', caret: 2, brand: 'visa' });
  assert.equal(card.brand('62212'), null, 'UnionPay or Discover: undecided');
  assert.equal(card.brand('622126'), 'discover');
  assert.equal(card.luhn('79927398713'), true);
  assert.equal(card.cvcLength('amex'), 4);
  assert.equal(card.cvcLength(null), null);
  assert.deepEqual(card.validatePan('4111 1111 1111 1111'), { valid: true, brand: 'visa', bin: '411111', last4: '1111' });
  assert.equal(card.validatePan('4111 1111 1111 11').code, 'card_invalid_length');
  assert.equal(card.validateCvc('12', 'visa').code, 'cvc_invalid');
  assert.equal(card.validateExpiry('01/21').code, 'expiry_past');
  assert.equal(card.validateExpiry('12/99').valid, false);
  const y = (new Date().getUTCFullYear() + 2) % 100;
  assert.equal(card.validateExpiry(`07 / ${y}`).valid, true);
  assert.deepEqual(sealer.s.classify('write to jane@example.com'), { sensitivity: 'none', kinds: [] });
  assert.deepEqual(sealer.s.classify('jane@example.com'), { sensitivity: 'personal', kinds: ['email'] });
  assert.deepEqual(sealer.s.classify('pay 4111-1111-1111-1111'), { sensitivity: 'payment_card', kinds: ['card_number'] });
  assert.equal(sealer.s.containsCardNumber('ref 1234'), false);
  assert.equal(sealer.s.fieldKindFor('iban'), 'iban');
});

test('a pool size that is not a whole number from 0 to 64 is refused', async () => {
  const { load } = await import(new URL('index.js', dist));
  for (const poolSize of [Number.NaN, Infinity, -1, 2.5, 65]) {
    await assert.rejects(load({ keys: keySet(), wasm: wasm(), poolSize }), { code: 'invalid_option' }, String(poolSize));
  }
});

test('a key set loaded from a URL is refreshed: rotated keys, a new clock offset, the old pool dropped', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  // The vault rotates: the first fetch serves key 1, every later one key 2 and a clock 500 s ahead.
  let fetches = 0;
  const fetchImpl = async () => {
    fetches += 1;
    const body = fetches === 1 ? keySet() : { keys: [doc.keys[1].jwk], server_time: Math.floor(Date.now() / 1000) + 500 };
    return new Response(JSON.stringify(body), { status: 200 });
  };
  const sealer = await load({ keys: 'https://vault.example/v1/keys', wasm: wasm(), fetch: fetchImpl, poolSize: 2, refreshKeys: 0 });
  sealer.prepare();
  assert.equal(sealer.keyId, doc.keys[0].jwk.kid);
  assert.equal(await sealer.refreshKeys(), doc.keys[1].jwk.kid);
  assert.equal(sealer.stats.pooled, 0, 'contexts prepared for the old key are dropped');
  const header = parseEnvelope(sealer.seal('4111111111111111', { kind: 'pan' }));
  assert.equal(header.kid, doc.keys[1].jwk.kid);
  assert.ok(Math.abs(header.createdAt - (Math.floor(Date.now() / 1000) + 500)) <= 2, 'stamped with the new offset');

  // A failed refresh keeps the keys and says why.
  let calls = 0;
  const broken = await load({
    keys: 'https://vault.example/v1/keys', wasm: wasm(), poolSize: 0, refreshKeys: 0,
    fetch: async () => (calls++ === 0 ? new Response(JSON.stringify(keySet())) : new Response('', { status: 503 })),
  });
  await assert.rejects(broken.refreshKeys(), { code: 'keyset_fetch' });
  assert.equal(broken.keyId, doc.keys[0].jwk.kid);
  // An inline key set has nothing to refresh from.
  const inline = await load({ keys: keySet(), wasm: wasm(), poolSize: 0 });
  await assert.rejects(inline.refreshKeys(), { code: 'invalid_option' });
  await assert.rejects(load({ keys: keySet(), wasm: wasm(), refreshKeys: -1 }), { code: 'invalid_option' });
});

test('the periodic refresh runs on its own', async () => {
  const { load } = await import(new URL('index.js', dist));
  let fetches = 0;
  const fetchImpl = async () => {
    fetches += 1;
    return new Response(JSON.stringify(fetches === 1 ? keySet() : { keys: [doc.keys[1].jwk], server_time: now }));
  };
  const sealer = await load({ keys: 'https://vault.example/v1/keys', wasm: wasm(), fetch: fetchImpl, poolSize: 0, refreshKeys: 0.05 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  sealer.close();
  assert.ok(fetches >= 2, `fetched ${fetches} times`);
  assert.equal(sealer.keyId, doc.keys[1].jwk.kid);
});

test('a polluted Object.prototype is no option: load() and seal() read their own properties only', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  const honest = { keys: [doc.keys[0].jwk], server_time: now };
  const substitute = { keys: [doc.keys[1].jwk], server_time: now };
  const answer = (set) => async () => new Response(JSON.stringify(set), { headers: { 'content-type': 'application/json' } });
  const realFetch = globalThis.fetch;
  globalThis.fetch = answer(honest);
  // A script on the page (or a vulnerable library) sets defaults on every object.
  Object.prototype.fetch = answer(substitute);
  Object.prototype.kind = 'text';
  Object.prototype.origin = 'https://attacker.example';
  try {
    const sealer = await load({ keys: 'https://vault.example/v1/keys', wasm: wasm(), refreshKeys: 0 });
    assert.equal(sealer.keyId, doc.keys[0].jwk.kid, 'the global fetch, not the inherited one');
    assert.throws(() => sealer.seal('4111111111111111', {}), { code: 'seal_unknown_kind' });
    const h = parseEnvelope(sealer.seal('4111111111111111', { kind: 'pan' }));
    assert.equal(h.context.origin, null);
    assert.throws(() => sealer.sealFields({ notes: { value: '737' } }), { code: 'seal_unknown_kind' }, 'no inherited kind');
  } finally {
    delete Object.prototype.fetch;
    delete Object.prototype.kind;
    delete Object.prototype.origin;
    globalThis.fetch = realFetch;
  }
});

// RFC 7638 thumbprint of a P-256 JWK, computed here with node:crypto (not by the package).
const thumbprint = (jwk) => createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`).digest('base64url');

test('pinned keys: a substituted key set is refused, on load and on refresh', async () => {
  const { load, parseEnvelope } = await import(new URL('index.js', dist));
  const [first, second] = doc.keys.map((k) => k.jwk);
  const serve = (...jwks) => async () => new Response(JSON.stringify({ keys: jwks, server_time: now }));
  const url = 'https://vault.example/v1/keys';
  const base = { keys: url, wasm: wasm(), poolSize: 0, refreshKeys: 0 };

  const sealer = await load({ ...base, fetch: serve(first), pins: [thumbprint(first)] });
  assert.equal(sealer.keyId, first.kid);
  // A proxy (or a compromised path on the merchant's server) answers with its own key.
  await assert.rejects(load({ ...base, fetch: serve(second), pins: [thumbprint(first)] }), { code: 'keyset_unpinned' });
  // Control: unpinned, the page would seal to the substitute.
  assert.equal((await load({ ...base, fetch: serve(second) })).keyId, second.kid);
  // Both keys published, one pinned: envelopes go to the pinned one only.
  const one = await load({ ...base, fetch: serve(second, first), pins: [thumbprint(first)] });
  assert.equal(parseEnvelope(one.seal('4111111111111111', { kind: 'pan' })).kid, first.kid);
  // Inline sets are checked too.
  await assert.rejects(load({ keys: { keys: [second], server_time: now }, wasm: wasm(), pins: [thumbprint(first)] }), { code: 'keyset_unpinned' });

  // A refresh that brings a substituted set is refused; the pinned keys stay.
  let calls = 0;
  const rotating = await load({
    ...base,
    pins: [thumbprint(first)],
    fetch: async () => new Response(JSON.stringify({ keys: [calls++ ? second : first], server_time: now })),
  });
  await assert.rejects(rotating.refreshKeys(), { code: 'keyset_unpinned', message: 'no key of the key set is pinned' });
  assert.equal(rotating.keyId, first.kid);

  for (const pins of [[], ['abc'], 'x', [thumbprint(first), 42]]) {
    await assert.rejects(load({ ...base, fetch: serve(first), pins }), { code: 'invalid_option' }, JSON.stringify(pins));
  }
});

test('pins without WebCrypto (a page outside a secure context) are refused as insecure_context', async () => {
  const { load } = await import(new URL('index.js', dist));
  const [first] = doc.keys.map((k) => k.jwk);
  const own = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true });
  try {
    await assert.rejects(load({ keys: { keys: [first], server_time: now }, wasm: wasm(), poolSize: 0, pins: [thumbprint(first)] }),
      { code: 'insecure_context', message: /secure context/ });
  } finally {
    if (own) Object.defineProperty(globalThis, 'crypto', own);
    else delete globalThis.crypto;
  }
});

test('pins: a malformed key set gets the error it gets without pins, and pinned keys not yet valid are named', async () => {
  const { load } = await import(new URL('index.js', dist));
  const [first, second] = doc.keys.map((k) => k.jwk);
  const pins = [thumbprint(first)];
  const base = { wasm: wasm(), poolSize: 0, refreshKeys: 0 };
  const cases = {
    'not JSON': '{"keys": [',
    'keys not an array': { keys: 'x', server_time: now },
    'a key without members': { keys: [{ kty: 'EC' }], server_time: now },
    'private material in an unpinned key': { keys: [first, { ...second, d: second.x }], server_time: now },
    'an unpinned key on another curve': { keys: [first, { ...second, crv: 'P-384' }], server_time: now },
    'an unpinned key off the curve': { keys: [first, { ...second, y: second.x }], server_time: now },
  };
  for (const [what, keys] of Object.entries(cases)) {
    const unpinned = await load({ ...base, keys }).then(() => null, (e) => e);
    assert.ok(unpinned?.code?.startsWith('keyset_'), `${what}: refused without pins`);
    await assert.rejects(load({ ...base, keys, pins }), { name: 'FieldsealError', code: unpinned.code, message: unpinned.message }, what);
  }
  // Only the next key pinned, before its nbf: no pinned key is valid yet, which is not "unpinned".
  const next = { ...second, nbf: now + 3600, exp: now + 7200 };
  await assert.rejects(load({ ...base, keys: { keys: [first, next], server_time: now }, pins: [thumbprint(second)] }), { code: 'keyset_no_usable_key' });
  assert.equal((await load({ ...base, keys: { keys: [first, next], server_time: now }, pins: [thumbprint(first), thumbprint(second)] })).keyId, first.kid);
});

test('a key-set URL is fetched without following redirects', async () => {
  const { load } = await import(new URL('index.js', dist));
  const { createServer } = await import('node:http');
  // The server answers /v1/keys with a redirect elsewhere (an https URL redirected to plain http
  // is the case that matters; here both are loopback http, which the URL rule allows).
  const server = createServer((req, res) => {
    if (req.url === '/v1/keys') res.writeHead(302, { location: '/elsewhere' }).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keySet()));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  try {
    const base = { wasm: wasm(), poolSize: 0, refreshKeys: 0 };
    assert.equal((await load({ ...base, keys: `${origin}/elsewhere` })).keyId, 'test-key-1', 'control');
    await assert.rejects(load({ ...base, keys: `${origin}/v1/keys` }), { code: 'keyset_fetch' });
    let init;
    await load({ ...base, keys: 'https://vault.example/v1/keys', fetch: async (u, i) => ((init = i), new Response(JSON.stringify(keySet()))) });
    assert.equal(init.redirect, 'error');
  } finally {
    server.close();
  }
});

test('key-set URLs must be https, except on localhost (*.localhost only in a browser)', async () => {
  const { load } = await import(new URL('index.js', dist));
  const requested = [];
  const fetchImpl = async (u) => {
    requested.push(u);
    return new Response(JSON.stringify(keySet()));
  };
  const base = { wasm: wasm(), fetch: fetchImpl, poolSize: 0, refreshKeys: 0 };
  for (const keys of ['http://vault.example/v1/keys', 'http://10.0.0.5/v1/keys', 'ftp://vault.example/keys', 'http://localhost.example.com/v1/keys',
    // Node resolves *.localhost through the DNS, which may answer with any address.
    'http://shop.localhost/v1/keys']) {
    await assert.rejects(load({ ...base, keys }), { code: 'keyset_insecure_url' }, keys);
  }
  await assert.rejects(load({ ...base, keys: '/v1/keys' }), { code: 'invalid_option' }, 'relative, outside a page');
  assert.deepEqual(requested, [], 'nothing fetched from a refused URL');
  for (const keys of ['https://vault.example/v1/keys', 'http://localhost:8700/v1/keys', 'http://127.0.0.1:8700/v1/keys', 'http://[::1]:8700/v1/keys']) {
    await load({ ...base, keys });
  }
  assert.equal(requested.length, 4);
});
