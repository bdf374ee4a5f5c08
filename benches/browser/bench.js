// Per-field seal time in this browser, measured in one page: fieldseal with a prepared context,
// fieldseal with an empty pool (ECDH at seal time), and a WebCrypto reference doing the same
// HPKE work by hand (ephemeral P-256 key, ECDH, HKDF-SHA256 key schedule, AES-256-GCM).
import { load } from '/fieldseal/index.js';
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';

const N = Number(new URLSearchParams(location.search).get('n') ?? 200);
const keys = await (await fetch('/v1/keys')).json();
const value = '4111111111111111';
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// performance.now() is coarsened in browsers (100 µs without cross-origin isolation), so each
// figure is the time of a batch of B operations divided by B; the median over N/B batches.
const B = 25;
async function perOp(setup, op) {
  const t = [];
  for (let r = 0; r < Math.max(1, Math.floor(N / B)); r++) {
    await setup?.();
    const s = performance.now();
    for (let i = 0; i < B; i++) {
      const p = op();
      if (p?.then) await p;
    }
    t.push((performance.now() - s) / B);
  }
  return t;
}

const sealer = await load({ keys, poolSize: 0 });
sealer.seal(value, { kind: 'pan' });
// fieldseal, prepared: B contexts prepared outside the timed section, then B seals.
const prepared = await perOp(() => sealer.prepare(B), () => sealer.seal(value, { kind: 'pan' }));
// Preparing a context (what the pool does when the page is idle).
const prepareOnly = await perOp(null, () => sealer.prepare(sealer.stats.pooled + 1));
while (sealer.stats.pooled) sealer.seal('x', { kind: 'text' });
// fieldseal, empty pool: every seal prepares its own context.
const cold = await perOp(null, () => sealer.seal(value, { kind: 'pan' }));
if (sealer.stats.sealedCold < N / 2) throw new Error('empty-pool seals did not run cold');

// WebCrypto reference: RFC 9180 base-mode sealing with DHKEM(P-256), HKDF-SHA256, AES-256-GCM.
const jwk = keys.keys[0];
const pkR = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, { name: 'ECDH', namedCurve: 'P-256' }, true, []);
const pkRBytes = new Uint8Array(await crypto.subtle.exportKey('raw', pkR));
const te = new TextEncoder();
const cat = (...a) => {
  const out = new Uint8Array(a.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of a) { out.set(x, o); o += x.length; }
  return out;
};
const i2osp = (n, w) => Uint8Array.from({ length: w }, (_, i) => (n >> (8 * (w - 1 - i))) & 0xff);
const kemSuite = cat(te.encode('KEM'), i2osp(0x10, 2));
const hpkeSuite = cat(te.encode('HPKE'), i2osp(0x10, 2), i2osp(1, 2), i2osp(2, 2));
const hmac = async (key, data) => new Uint8Array(await crypto.subtle.sign('HMAC',
  await crypto.subtle.importKey('raw', key.length ? key : new Uint8Array(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']), data));
const extract = (salt, label, ikm, suite) => hmac(salt, cat(te.encode('HPKE-v1'), suite, te.encode(label), ikm));
async function expand(prk, label, info, len, suite) {
  const block = await hmac(prk, cat(i2osp(len, 2), te.encode('HPKE-v1'), suite, te.encode(label), info, new Uint8Array([1])));
  return block.slice(0, len);
}
const info = te.encode('fieldseal envelope v1');
const aad = new Uint8Array(84);
async function webcryptoSeal(pt) {
  const eph = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: pkR }, eph.privateKey, 256));
  const enc = new Uint8Array(await crypto.subtle.exportKey('raw', eph.publicKey));
  const eaePrk = await extract(new Uint8Array(), 'eae_prk', dh, kemSuite);
  const shared = await expand(eaePrk, 'shared_secret', cat(enc, pkRBytes), 32, kemSuite);
  const pskIdHash = await extract(new Uint8Array(), 'psk_id_hash', new Uint8Array(), hpkeSuite);
  const infoHash = await extract(new Uint8Array(), 'info_hash', info, hpkeSuite);
  const ctx = cat(new Uint8Array([0]), pskIdHash, infoHash);
  const secret = await extract(shared, 'secret', new Uint8Array(), hpkeSuite);
  const key = await expand(secret, 'key', ctx, 32, hpkeSuite);
  const nonce = await expand(secret, 'base_nonce', ctx, 12, hpkeSuite);
  const k = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, k, pt));
}
await webcryptoSeal(te.encode(value));
const wc = await perOp(null, () => webcryptoSeal(te.encode(value)));
// @hpke/core (an HPKE library on WebCrypto), same suite, same value.
const hpkeSuite2 = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
const hpkeRecipient = await hpkeSuite2.kem.importKey('raw', pkRBytes.buffer, true);
const hpkeCoreSeal = (pt) => hpkeSuite2.seal({ recipientPublicKey: hpkeRecipient, info }, pt, aad);
await hpkeCoreSeal(te.encode(value));
const hpkeCore = await perOp(null, () => hpkeCoreSeal(te.encode(value)));

// A whole checkout form: card number, expiry, CVC, name, e-mail, phone, as submit seals them.
const form = {
  pan: value, exp: '12/30', cvc: '737', name: 'Jane Doe', email: 'jane.doe@example.com', phone: '+1 415 555 0100',
};
const fields = Object.keys(form).length;
const formPrepared = await perOp(() => sealer.prepare(B * fields), () => sealer.sealFields(form));
while (sealer.stats.pooled) sealer.seal('x', { kind: 'text' });
const formCold = await perOp(null, () => sealer.sealFields(form));

// WebCrypto AES-256-GCM alone (the symmetric part, as with a prepared context).
const aesKey = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)), 'AES-GCM', false, ['encrypt']);
const wcAes = await perOp(null, () => crypto.subtle.encrypt({ name: 'AES-GCM', iv: crypto.getRandomValues(new Uint8Array(12)), additionalData: aad }, aesKey, te.encode(value)));

const result = {
  n: N,
  userAgent: navigator.userAgent,
  timerResolutionMs: (() => { const a = performance.now(); let b = a; while (b === a) b = performance.now(); return b - a; })(),
  medianMs: {
    fieldsealPrepared: median(prepared),
    fieldsealPrepareOnly: median(prepareOnly),
    fieldsealEmptyPool: median(cold),
    webcryptoHpke: median(wc),
    webcryptoAesGcmOnly: median(wcAes),
    hpkeCoreSeal: median(hpkeCore),
    formPrepared: median(formPrepared),
    formEmptyPool: median(formCold),
  },
  formFields: fields,
  batch: B,
};
document.querySelector('#out').textContent = JSON.stringify(result, null, 2);
window.benchResult = result;
