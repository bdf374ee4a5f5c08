// The hosted field frame: one card input (number, expiry, security code or name) in a page the
// vault serves from its own origin. It formats, validates and seals with the same SDK as in-page
// sealing; only envelopes and non-sensitive state (brand, empty, complete, focus, error code and
// message) leave it, over a MessageChannel handed to the one parent origin the vault allowed
// (`?origin=`, also the CSP's only `frame-ancestors`). State is sent when it changes, not at each
// keystroke, and says no more while the shopper types than the length the field has reached
// (no check digit of a part of the number). The protocol: docs/hosted-fields.md.
import { load } from '../index.js';
import { expiryAsTyped } from '../protect.js';
import { checkAppearance } from './appearance.js';

const FIELDS = {
  __proto__: null,
  pan: { kind: 'pan', autocomplete: 'cc-number', inputmode: 'numeric', label: 'Card number', placeholder: '1234 1234 1234 1234', max: 23 },
  exp: { kind: 'exp', autocomplete: 'cc-exp', inputmode: 'numeric', label: 'Expiry date', placeholder: 'MM / YY', max: 9 },
  cvc: { kind: 'cvc', autocomplete: 'cc-csc', inputmode: 'numeric', label: 'Security code', placeholder: 'CVC', max: 4 },
  name: { kind: 'name', autocomplete: 'cc-name', inputmode: 'text', label: 'Name on card', placeholder: '', max: 100 },
};
const REQUIRED = { code: 'required', message: 'This field is required.' };

const params = new URLSearchParams(location.search);
const field = params.get('field');
const parentOrigin = params.get('origin');
const id = location.hash.slice(1);
const spec = FIELDS[field];

/** The parent may be only the origin the vault checked (Chromium also tells it directly). */
function parentChecked() {
  if (window.parent === window || !spec || !/^[\w-]{16,64}$/.test(id)) return false;
  const ancestors = location.ancestorOrigins;
  return !ancestors || ancestors[0] === parentOrigin;
}

if (parentChecked()) start();

function start() {
  const meta = document.querySelector('meta[name="fieldseal-wasm"]');
  // The wasm checked against the hash the vault computed at start; the key set from the vault.
  const sealer = load({
    keys: '/v1/keys',
    wasm: fetch(meta.content, { integrity: meta.dataset.integrity, credentials: 'omit' }),
    poolSize: 1,
    context: { origin: parentOrigin },
  });
  sealer.catch(() => {});

  const input = document.createElement('input');
  input.id = 'field';
  input.setAttribute('autocomplete', spec.autocomplete);
  input.setAttribute('inputmode', spec.inputmode);
  input.setAttribute('aria-required', 'true');
  input.spellcheck = false;
  input.setAttribute('autocorrect', 'off');
  input.setAttribute('autocapitalize', field === 'name' ? 'words' : 'off');
  input.maxLength = spec.max;
  input.readOnly = true; // until the sealer is ready

  const { port1: port, port2 } = new MessageChannel();
  const send = (msg) => port.postMessage(msg);
  let inited = false;
  let ready = false;
  let brand = null; // the card number's (pan), or the one the parent relays (cvc)
  let error = null; // the error shown
  let complete = false;
  let last = '';

  const card = async () => (await sealer).card;
  // The state, sent only when it changed.
  function post() {
    const m = { type: 'state', empty: input.value === '', complete, error, ...(field === 'pan' ? { brand } : {}) };
    const key = JSON.stringify(m);
    if (key !== last) {
      last = key;
      send(m);
    }
  }

  function validate(s) {
    const v = input.value;
    if (v.trim() === '') return field === 'pan' ? wrapCheck(s.card.validatePan('')) : REQUIRED;
    switch (field) {
      case 'pan': return wrapCheck(s.card.validatePan(v));
      case 'exp': return wrapCheck(s.card.validateExpiry(v));
      case 'cvc': return wrapCheck(s.card.validateCvc(v, brand));
      default: return null;
    }
  }
  const wrapCheck = (r) => (r.valid ? null : { code: r.code, message: r.message });

  // The field as typed so far: [status, error], status empty, incomplete, complete or invalid,
  // decided by length (and by characters) only, except when the value cannot grow: the card
  // number at its brand's longest length, an expiry with its year, a CVC of its length. A card
  // number of a length its brand issues is complete from 16 digits on (13 or 14 digits may be
  // the start of a longer one), and its check digit is told at the blur or the seal: the state
  // never says whether a part of the number passes the Luhn check.
  function typed(s) {
    const v = input.value.trim();
    if (v === '') return ['empty', null];
    const err = validate(s);
    if (field === 'pan') {
      const code = err?.code;
      const issued = !err || code === 'card_luhn_mismatch';
      const full = s.card.validatePan(`${v}0`).code === 'card_too_long';
      if (issued && full) return [err ? 'invalid' : 'complete', err];
      if (issued) return [v.replace(/\D/g, '').length >= 16 ? 'complete' : 'incomplete', null];
      return code === 'card_too_short' || code === 'card_invalid_length' ? ['incomplete', null] : ['invalid', err];
    }
    if (!err) return ['complete', null];
    return (field === 'exp' ? err.code === 'expiry_invalid' : /^\d{0,3}$/.test(v)) ? ['incomplete', null] : ['invalid', err];
  }

  function show(err) {
    error = err;
    if (err) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  async function onInput(e) {
    const s = await sealer;
    if (field === 'pan') {
      const caret = input.selectionStart ?? input.value.length;
      const f = s.card.format(input.value, caret);
      if (f.text !== input.value) {
        input.value = f.text;
        if (document.activeElement === input) input.setSelectionRange(f.caret, f.caret);
      }
      brand = s.card.brand(input.value);
    } else if (field === 'exp' && e.inputType === 'insertText' && input.selectionStart === input.value.length) {
      const text = expiryAsTyped(input.value);
      if (text !== input.value) {
        input.value = text;
        input.setSelectionRange(text.length, text.length);
      }
    }
    const [status, err] = typed(s);
    complete = status === 'complete';
    // A field that cannot be right as typed shows why at once; a shown error goes when the field
    // is emptied or complete, and stays while it is incomplete. The check digit waits for the
    // blur (or the seal).
    if (status === 'invalid') show(err);
    else if (status !== 'incomplete') show(null);
    post();
  }

  input.addEventListener('input', (e) => onInput(e).catch(() => {}));
  input.addEventListener('focus', () => send({ type: 'focus' }));
  // The shopper is done with the field: the whole check.
  input.addEventListener('blur', async () => {
    if (ready && input.value !== '') {
      show(validate(await sealer));
      complete = !error;
    }
    send({ type: 'blur' });
    post();
  });

  async function seal(req) {
    let s;
    try {
      s = await sealer;
    } catch (e) {
      return send({ type: 'sealed', req, error: { code: e.code ?? 'internal', message: String(e.message ?? e) } });
    }
    const err = validate(s);
    show(err);
    complete = !err;
    post();
    if (err) return send({ type: 'sealed', req, error: err });
    try {
      send({ type: 'sealed', req, envelope: s.seal(input.value, { kind: spec.kind, context: sealContext }) });
    } catch (e) {
      send({ type: 'sealed', req, error: { code: e.code ?? 'internal', message: String(e.message ?? e) } });
    }
  }

  let sealContext;
  port.onmessage = (e) => {
    const m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.type === 'init' && !inited) {
      inited = true;
      init(m);
      return;
    }
    if (!inited) return;
    if (m.type === 'seal' && Number.isInteger(m.req)) seal(m.req);
    else if (m.type === 'focus') input.focus();
    else if (m.type === 'clear') {
      input.value = '';
      brand = null;
      complete = false;
      show(null);
      post();
    } else if (m.type === 'brand' && field === 'cvc' && (m.brand === null || /^[a-z]{2,20}$/.test(m.brand))) {
      brand = m.brand;
      card().then((c) => {
        input.maxLength = c.cvcLength(brand) ?? 4;
      }, () => {});
      if (input.value !== '') onInput({}).catch(() => {});
    }
  };

  function init(m) {
    const text = (v, max, fallback) => (typeof v === 'string' && v.length <= max ? v : fallback);
    input.setAttribute('aria-label', text(m.label, 100, spec.label));
    input.placeholder = text(m.placeholder, 40, spec.placeholder);
    if (typeof m.lang === 'string' && /^[a-zA-Z]{2,3}(-[a-zA-Z\d]{2,8})*$/.test(m.lang)) document.documentElement.lang = m.lang;
    if (typeof m.session === 'string') sealContext = { session: m.session };
    try {
      const { vars, font } = checkAppearance(m.appearance);
      for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
      if (font) {
        const face = new FontFace(font.family, `url(/fields/v1/fonts/${font.file})`, { weight: font.weight });
        document.fonts.add(face);
        face.load().catch(() => send({ type: 'error', code: 'font_unavailable', message: `font ${font.file} could not be loaded from the vault` }));
      }
    } catch (e) {
      send({ type: 'error', code: e.code, message: e.message });
    }
    document.body.append(input);
    new ResizeObserver(() => send({ type: 'resize', height: Math.ceil(document.documentElement.getBoundingClientRect().height) }))
      .observe(document.documentElement);
    sealer.then(() => {
      ready = true;
      input.readOnly = false;
      send({ type: 'ready' });
      post();
    }, (e) => send({ type: 'error', code: e.code ?? 'internal', message: String(e.message ?? e) }));
  }

  // The handshake: the channel's other end goes to the parent, only if its origin is the one the
  // vault allowed (the browser drops the message otherwise).
  window.parent.postMessage({ type: 'fieldseal:hello', v: 1, id, field }, parentOrigin, [port2]);
}
