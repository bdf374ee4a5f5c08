// fieldseal: seals checkout fields in the page to the vault's key (envelope v1, HPKE RFC 9180).
// Importing this module has no side effects and touches neither `window` nor `document`: it is
// safe during server-side rendering. The wasm is fetched and instantiated by `load()`.
import { protectForm, scanFields } from './protect.js';

export { parseEnvelope, isEnvelope, EnvelopeFormatError } from './envelope.js';

/** An error from fieldseal, with a stable machine-readable `code`. */
export class FieldsealError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'FieldsealError';
    this.code = code;
  }
}

// The messages of the errors the wasm throws: it carries a code and, for some, a detail (`{}`:
// the id of a refused key, what and where in a malformed key set), but no text. The wording is
// fieldseal-core's (its errors' Display); a test in src/lib.rs holds the two together.
const MESSAGES = {
  __proto__: null,
  keyset_too_large: 'key set is larger than 16384 bytes',
  keyset_malformed: 'key set is malformed: {}',
  keyset_empty: 'key set has no keys',
  keyset_too_many_keys: 'key set has more than 16 keys',
  keyset_invalid_key_id: 'invalid key id',
  keyset_duplicate_key_id: 'duplicate key id {}',
  keyset_unsupported_key_type: 'key {}: key type is not EC',
  keyset_unsupported_curve: 'key {}: curve is not P-256',
  keyset_unsupported_algorithm: 'key {}: algorithm is not HPKE-7',
  keyset_wrong_use: 'key {}: use is not enc',
  keyset_private_key_material: 'key {}: private key material in a public key set',
  keyset_invalid_coordinate: 'key {}: coordinate is not 32 bytes of base64url',
  keyset_invalid_point: 'key {}: not a point on P-256',
  keyset_invalid_validity: 'key {}: nbf is not before exp',
  keyset_expired: 'key {}: expired',
  keyset_no_usable_key: 'no key is valid at the server time',
  seal_empty_value: 'value is empty',
  seal_value_too_long: 'value is longer than 1024 bytes',
  seal_unknown_kind: 'unknown field kind',
  seal_invalid_context: 'context must be visible ASCII (session up to 128 bytes, origin up to 255)',
  seal_hints_not_allowed: 'hints are allowed on card numbers only',
  seal_invalid_hints: 'BIN must be 6 or 8 digits and last four 4 digits',
  seal_hint_mismatch: 'hints do not match the value',
  seal_invalid_recipient: 'recipient key is unusable',
  seal_randomness: 'random source unavailable',
  seal_context_used: 'this sealing context has already sealed a value',
  seal_invalid_time: 'created_at must be a non-negative number of seconds',
  seal_invalid_utf8: 'value is not UTF-8 text',
  card_empty: 'Enter a card number.',
  card_invalid_characters: 'A card number contains digits only.',
  card_too_short: 'The card number is incomplete.',
  card_too_long: 'The card number is too long.',
  card_invalid_length: 'The card number has the wrong length for this card.',
  card_luhn_mismatch: 'The card number is not valid. Check it for typing mistakes.',
  cvc_invalid: 'The security code is incomplete.',
  expiry_invalid: 'Enter the expiry date as MM/YY.',
  expiry_invalid_month: 'The expiry month is not valid.',
  expiry_past: 'The card has expired.',
  expiry_too_far: 'The expiry year is too far in the future.',
};

/** Re-throws an error from the wasm (a plain Error with `code` and maybe `detail`) as a FieldsealError. */
function wrap(e) {
  if (e instanceof FieldsealError) return e;
  if (e && typeof e.code === 'string') {
    const text = MESSAGES[e.code];
    return new FieldsealError(e.code, text ? text.replace('{}', () => e.detail ?? '') : e.message);
  }
  return new FieldsealError('internal', String(e?.message ?? e));
}

const nowSeconds = () => Date.now() / 1000;

let wasmModule = null;

async function instantiate(wasm) {
  const glue = await import('./wasm/fieldseal.js');
  if (!wasmModule) {
    // With a URL or Response the glue uses WebAssembly.instantiateStreaming when the server sends
    // `application/wasm`, and falls back to bytes otherwise.
    const source = wasm ?? new URL('./wasm/fieldseal_bg.wasm', import.meta.url);
    await glue.default({ module_or_path: source });
    wasmModule = glue;
  }
  return glue;
}

async function fetchKeys(keys, fetchImpl) {
  if (isUrl(keys)) {
    let res;
    try {
      // No redirect is followed: one could move an https URL to plain http.
      res = await fetchImpl(keySetUrl(keys), { credentials: 'omit', cache: 'no-store', redirect: 'error' });
    } catch (e) {
      if (e instanceof FieldsealError) throw e;
      throw new FieldsealError('keyset_fetch', `key set request failed: ${e?.message ?? e}`);
    }
    if (!res.ok) throw new FieldsealError('keyset_fetch', `key set request failed with HTTP ${res.status}`);
    return { json: await res.text(), receivedAt: nowSeconds() };
  }
  const json = typeof keys === 'string' ? keys : JSON.stringify(keys);
  return { json, receivedAt: nowSeconds() };
}

/**
 * The key-set URL, absolute: https, or http on a loopback host only (localhost, 127.x, [::1], and
 * *.localhost in a browser, which resolves it to loopback: Node asks the DNS, which may not);
 * whoever can change a plain-http response could substitute the keys.
 */
function keySetUrl(keys) {
  let url;
  try {
    url = new URL(keys, globalThis.location?.href);
  } catch {
    throw new FieldsealError('invalid_option', 'a key-set URL outside a page must be absolute');
  }
  const browser = typeof globalThis.document === 'object' || typeof globalThis.WorkerGlobalScope === 'function';
  const loopback = /^(localhost|127(\.\d+){3}|\[::1\])$/.test(url.hostname) || (browser && url.hostname.endsWith('.localhost'));
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new FieldsealError('keyset_insecure_url', 'the key-set URL must be https (http on localhost only; *.localhost in a browser only)');
  }
  return url.href;
}

// RFC 7638 thumbprints: SHA-256, unpadded base64url.
const PIN = /^[\w-]{43}$/;

/**
 * Loads the key set and the wasm and returns a Sealer.
 * @param {import('./index.js').LoadOptions} options
 */
export async function load(options) {
  // Own properties only: a polluted Object.prototype (`fetch`, `keys`) is not an option.
  const { keys, wasm, poolSize = 4, context, fetch: fetchImpl = globalThis.fetch, refreshKeys = 3600, pins } = { __proto__: null, ...options };
  if (pins !== undefined && !(Array.isArray(pins) && pins.length && pins.every((p) => PIN.test(p)))) {
    throw new FieldsealError('invalid_option', 'pins must be a non-empty array of RFC 7638 thumbprints (43 characters of base64url)');
  }
  if (!Number.isInteger(poolSize) || poolSize < 0 || poolSize > 64) {
    throw new FieldsealError('invalid_option', 'poolSize must be a whole number from 0 to 64');
  }
  if (typeof refreshKeys !== 'number' || !(refreshKeys >= 0)) {
    throw new FieldsealError('invalid_option', 'refreshKeys must be a number of seconds, 0 to turn refreshing off');
  }
  if (keys === undefined || keys === null) throw new FieldsealError('keyset_missing', 'load() needs { keys }: a key-set URL or a key set');
  const [{ json, receivedAt }, glue] = await Promise.all([fetchKeys(keys, fetchImpl), instantiate(wasm)]);
  const source = isUrl(keys) ? { keys, fetchImpl, pins } : null;
  return new Sealer(glue, await parseKeys(glue, json, pins), { receivedAt, poolSize, context, source, refreshKeys });
}

/**
 * Protects a form with a sealer or with the promise `load()` returns, so the form is closed from
 * the start: `protect(form, load({ keys }))`. See protect.js.
 */
export function protect(form, sealer, options) {
  return protectForm(sealer, form, options);
}

/**
 * Parses the key set; with `pins`, the whole set is first checked as without them (a malformed set
 * gets the same error), then only its keys whose RFC 7638 thumbprint is pinned go to the wasm
 * again (which picks the primary among them): none is `keyset_unpinned`; pinned keys none of
 * which is valid at the server time, `keyset_no_usable_key`; without WebCrypto (a page
 * outside a secure context), `insecure_context`. The thumbprint is SHA-256 (WebCrypto)
 * of the canonical members, from x and y as given: the wasm has refused any x or y that is not
 * the key's canonical 43-character base64url.
 */
async function parseKeys(glue, json, pins) {
  const parse = (text) => {
    try {
      return glue.Keys.parse(text);
    } catch (e) {
      throw wrap(e);
    }
  };
  if (!pins) return parse(json);
  parse(json).free();
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new FieldsealError('insecure_context', 'pins need WebCrypto, which pages have only in secure contexts (https or localhost)');
  const doc = JSON.parse(json);
  const pinned = [];
  for (const k of doc.keys) {
    const digest = await subtle.digest('SHA-256', encoder.encode(`{"crv":"P-256","kty":"EC","x":"${k.x}","y":"${k.y}"}`));
    const print = btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '');
    if (pins.includes(print)) pinned.push(k);
  }
  if (!pinned.length) throw new FieldsealError('keyset_unpinned', 'no key of the key set is pinned');
  return parse(JSON.stringify({ ...doc, keys: pinned }));
}

const isUrl = (keys) => typeof keys === 'string' && !keys.trimStart().startsWith('{');

const idle = (fn) => {
  if (typeof globalThis.requestIdleCallback === 'function') {
    const id = globalThis.requestIdleCallback(fn, { timeout: 2000 });
    return () => globalThis.cancelIdleCallback(id);
  }
  const t = setTimeout(() => fn({ timeRemaining: () => 10, didTimeout: false }), 30);
  t?.unref?.();
  return () => clearTimeout(t);
};

const encoder = new TextEncoder();

/** Seals values and protects forms. Create one with `load()`. */
export class Sealer {
  #glue;
  #keys;
  #offset;
  #pool = [];
  #poolSize;
  #context;
  #cancelRefill = null;
  #source;
  #keysTimer = null;
  #stats = { prepared: 0, sealedFromPool: 0, sealedCold: 0 };

  constructor(glue, keys, { receivedAt, poolSize, context, source = null, refreshKeys = 0 }) {
    this.#glue = glue;
    this.#keys = keys;
    // Server time = local time + offset, so a wrong device clock does not make envelopes stale.
    this.#offset = keys.serverTime - receivedAt;
    this.#poolSize = Math.max(0, Math.floor(poolSize));
    this.#context = context;
    this.#source = source;
    this.#scheduleRefill();
    // A page that stays open for hours picks up rotated keys and a fresh clock offset.
    if (source && refreshKeys > 0) this.#scheduleKeyRefresh(refreshKeys * 1000);
  }

  #scheduleKeyRefresh(ms) {
    const t = setTimeout(() => {
      this.refreshKeys()
        .catch(() => {}) // The current keys stay; tried again at the next interval.
        .finally(() => this.#scheduleKeyRefresh(ms));
    }, ms);
    t?.unref?.();
    this.#keysTimer = t;
  }

  /**
   * Fetches the key set again (when `load()` was given its URL): rotated keys and the vault's clock.
   * When the primary key changed, the prepared contexts (sealed to the old one) are dropped. On
   * failure the current keys stay and the error is thrown. Resolves to the primary key id.
   */
  async refreshKeys() {
    if (!this.#source) throw new FieldsealError('invalid_option', 'the key set was given inline; there is no URL to refresh it from');
    const { json, receivedAt } = await fetchKeys(this.#source.keys, this.#source.fetchImpl);
    const parsed = await parseKeys(this.#glue, json, this.#source.pins);
    const changed = parsed.primaryKid !== this.#keys.primaryKid;
    this.#keys.free();
    this.#keys = parsed;
    this.#offset = parsed.serverTime - receivedAt;
    if (changed) {
      for (const ctx of this.#pool.splice(0)) ctx.free();
      this.#cancelRefill?.();
      this.#cancelRefill = null;
      this.#scheduleRefill();
    }
    return parsed.primaryKid;
  }

  /** Stops the periodic key refresh and the pool's refill (for pages that drop the sealer). */
  close() {
    clearTimeout(this.#keysTimer);
    this.#keysTimer = null;
    this.#cancelRefill?.();
    this.#cancelRefill = null;
  }

  /** The key id envelopes are sealed to. */
  get keyId() {
    return this.#keys.primaryKid;
  }

  /** The vault's current time, in seconds since the epoch, as learned from the key set. */
  serverNow() {
    return Math.floor(nowSeconds() + this.#offset);
  }

  /** Prepared contexts waiting, and counters of prepared and sealed values. */
  get stats() {
    return { pooled: this.#pool.length, poolSize: this.#poolSize, ...this.#stats };
  }

  /** Prepares up to `count` contexts now (the pool also refills itself when the page is idle). */
  prepare(count = this.#poolSize) {
    while (this.#pool.length < count) this.#pool.push(this.#newContext());
  }

  #newContext() {
    try {
      const ctx = new this.#glue.Prepared(this.#keys);
      this.#stats.prepared++;
      return ctx;
    } catch (e) {
      throw wrap(e);
    }
  }

  #scheduleRefill() {
    if (this.#cancelRefill || this.#pool.length >= this.#poolSize) return;
    this.#cancelRefill = idle((deadline) => {
      this.#cancelRefill = null;
      try {
        do {
          this.#pool.push(this.#newContext());
        } while (this.#pool.length < this.#poolSize && deadline.timeRemaining() > 3);
      } catch {
        return; // Retried at the next seal; sealing itself reports the error.
      }
      this.#scheduleRefill();
    });
  }

  /**
   * Seals one value and returns its envelope text, synchronously. Uses a prepared context when one
   * is waiting (symmetric work only) and prepares one otherwise; a context is never used twice.
   */
  seal(value, options = {}) {
    const { kind, context } = { __proto__: null, ...options };
    if (typeof kind !== 'string') throw new FieldsealError('seal_unknown_kind', 'seal() needs { kind }, such as "pan" or "email"');
    const ctx = this.#pool.shift() ?? null;
    const prepared = ctx ?? this.#newContext();
    const bytes = encoder.encode(String(value ?? ''));
    const { session = null, origin = defaultOrigin() } = { __proto__: null, ...this.#context, ...context };
    try {
      const envelope = prepared.seal(bytes, kind, this.serverNow(), session ?? undefined, origin ?? undefined);
      this.#stats[ctx ? 'sealedFromPool' : 'sealedCold']++;
      return envelope;
    } catch (e) {
      throw wrap(e);
    } finally {
      bytes.fill(0);
      prepared.free();
      this.#scheduleRefill();
    }
  }

  /**
   * Seals several values: `{ name: value }` where `name` is a field kind (`pan`, `cvc`, `email` ...),
   * or `{ name: { value, kind } }`. Returns `{ name: envelope }`; empty values are left out.
   */
  sealFields(fields, options) {
    const out = {};
    const { context } = { __proto__: null, ...options };
    for (const [name, v] of Object.entries(fields)) {
      const { value, kind } = v !== null && typeof v === 'object' ? { __proto__: null, ...v } : { value: v, kind: name };
      if (value === undefined || value === null || String(value) === '') continue;
      out[name] = this.seal(value, { kind, context });
    }
    return out;
  }

  /** Card rules from fieldseal-core. */
  get card() {
    const g = this.#glue;
    return {
      brand: (number) => g.cardBrand(String(number)) ?? null,
      luhn: (digits) => g.luhn(String(digits)),
      cvcLength: (brand) => g.cvcLength(brand ?? undefined) || null,
      format: (input, caret = String(input).length) => {
        const f = g.formatPan(String(input), caret);
        const r = { text: f.text, caret: f.caret, brand: f.brand ?? null };
        f.free();
        return r;
      },
      validatePan: (input) => check(() => {
        const p = g.validatePan(String(input));
        const r = { valid: true, brand: p.brand ?? null, bin: p.bin, last4: p.last4 };
        p.free();
        return r;
      }),
      validateCvc: (cvc, brand) => check(() => {
        g.validateCvc(String(cvc), brand ?? undefined);
        return { valid: true };
      }),
      validateExpiry: (input) => check(() => {
        const e = g.validateExpiry(String(input), this.serverNow());
        const r = { valid: true, month: e.month, year: e.year };
        e.free();
        return r;
      }),
    };
  }

  /** Which kinds of personal data `value` looks like, and its sensitivity class. */
  classify(value) {
    const [sensitivity, ...kinds] = this.#glue.classify(String(value ?? ''));
    return { sensitivity, kinds };
  }

  /** Whether `text` contains a card number: a known brand's, or Luhn-valid with an issuer's first digit (see fieldseal-core). */
  containsCardNumber(text) {
    return this.#glue.containsCardNumber(String(text ?? ''));
  }

  /** The field kind a classified kind is sealed as (`us_ssn` -> `national-id`). */
  fieldKindFor(piiKind) {
    return this.#glue.fieldKindFor(piiKind) ?? null;
  }

  /**
   * The inputs under `root` (default: the document) that look like card or personal data but are
   * neither protected nor marked `data-seal="off"`: `[{ element, kind, reason }]`.
   */
  scan(root = globalThis.document) {
    return scanFields(this, root);
  }

  /** Protects a form: validation, card formatting, sealing on submit, stray-PAN guard. */
  protect(form, options) {
    return protectForm(this, form, options);
  }
}

function check(fn) {
  try {
    return fn();
  } catch (e) {
    const err = wrap(e);
    return { valid: false, code: err.code, message: err.message };
  }
}

function defaultOrigin() {
  const o = globalThis.location?.origin;
  return typeof o === 'string' && /^https?:\/\//.test(o) ? o : null;
}
