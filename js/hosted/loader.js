// fieldseal/hosted: mounts the vault's card field frames into the merchant's page. The page never
// holds the card number: it gets envelopes and non-sensitive state (brand, empty, complete, valid,
// focus, error codes) over one MessageChannel a frame, handed over in a handshake that is checked
// on both sides (the frame sends it only to this page's origin; this page takes it only from the
// vault's origin, from that frame's window, with the nonce it put in that frame's URL).
// Importing this module has no side effects. Protocol and options: docs/hosted-fields.md.
import { checkAppearance } from './appearance.js';

/** An error from fieldseal, with a stable machine-readable `code`. */
export class FieldsealError extends Error {
  constructor(code, message, fields) {
    super(message);
    this.name = 'FieldsealError';
    this.code = code;
    if (fields) this.fields = fields;
  }
}

const ORDER = ['pan', 'exp', 'cvc', 'name'];
const LABELS = { pan: 'Card number', exp: 'Expiry date', cvc: 'Security code', name: 'Name on card' };
const UNAVAILABLE = 'Secure payment is unavailable right now. Please try again later.';
const fail = (code, message) => {
  throw new FieldsealError(code, message);
};

/** The vault's origin: https, or http on a loopback host. */
function vaultOrigin(vault) {
  let url;
  try {
    url = new URL(vault);
  } catch {
    fail('invalid_option', 'vault must be the vault\'s absolute URL, such as https://vault.example');
  }
  const loopback = /^(localhost|127(\.\d+){3}|\[::1\])$/.test(url.hostname) || url.hostname.endsWith('.localhost');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    fail('invalid_option', 'the vault URL must be https (http on localhost only)');
  }
  return url.origin;
}

const nonce = () => {
  const b = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_');
};

const element = (doc, el, what) => {
  const found = typeof el === 'string' ? doc.querySelector(el) : el;
  if (!found || found.nodeType !== 1) fail('invalid_option', `${what}: no such element`);
  return found;
};

/**
 * Mounts the card field frames. Throws FieldsealError `invalid_option` or `appearance_invalid`.
 * @param {import('./hosted.js').MountOptions} options
 * @returns {HostedFields}
 */
export function mountFields(options) {
  return new HostedFields({ __proto__: null, ...options });
}

/** The mounted frames: events, `seal()`, `protect(form)`. */
export class HostedFields extends EventTarget {
  #frames = new Map();
  #origin;
  #messages;
  #errorText;
  #req = 0;
  #pending = new Map();
  #undo = [];
  #ready;
  #destroyed = false;

  constructor(o) {
    super();
    const doc = globalThis.document;
    this.#origin = vaultOrigin(o.vault);
    const containers = { __proto__: null, ...o.fields };
    for (const k of Object.keys(containers)) if (!ORDER.includes(k)) fail('invalid_option', `fields.${k}: not a field (pan, exp, cvc, name)`);
    for (const k of ['pan', 'exp', 'cvc']) if (!containers[k]) fail('invalid_option', `fields.${k} is required`);
    // Checked here so that a mistake shows at mount; the frame checks it again.
    try {
      checkAppearance(o.appearance);
    } catch (e) {
      fail(e.code, e.message);
    }
    const session = o.context?.session;
    if (session !== undefined && !(typeof session === 'string' && /^[\x21-\x7e]{1,128}$/.test(session))) {
      fail('invalid_option', 'context.session must be 1 to 128 visible ASCII characters');
    }
    this.#errorText = { __proto__: null, ...o.errorMessages };
    this.#messages = o.messages ? element(doc, o.messages, 'messages') : null;
    if (this.#messages && !this.#messages.hasAttribute('aria-live')) this.#messages.setAttribute('aria-live', 'polite');
    const timeout = o.timeout ?? 15000;
    const pageOrigin = globalThis.location.origin;

    const readies = [];
    for (const field of ORDER.filter((k) => containers[k])) {
      const box = element(doc, containers[field], `fields.${field}`);
      const label = o.labels?.[field] ?? (box.id && doc.querySelector(`label[for="${CSS.escape(box.id)}"]`)?.textContent.trim()) ?? LABELS[field];
      const id = nonce();
      const iframe = doc.createElement('iframe');
      iframe.src = `${this.#origin}/fields/v1/frame.html?field=${field}&origin=${encodeURIComponent(pageOrigin)}#${id}`;
      iframe.title = label || LABELS[field];
      iframe.setAttribute('referrerpolicy', 'no-referrer');
      iframe.setAttribute('allow', 'payment \'none\'');
      iframe.setAttribute('frameborder', '0');
      iframe.setAttribute('scrolling', 'no');
      iframe.style.cssText = 'display:block;width:100%;height:46px;border:0;overflow:hidden;color-scheme:normal';
      const f = { field, box, iframe, id, port: null, state: { empty: true, complete: false, error: null }, ready: null };
      f.ready = new Promise((resolve, reject) => {
        f.resolve = resolve;
        f.reject = reject;
      });
      f.ready.catch(() => {});
      readies.push(f.ready);
      f.init = { type: 'init', label: iframe.title, placeholder: o.placeholders?.[field], appearance: o.appearance, lang: doc.documentElement.lang || undefined, session };
      this.#frames.set(field, f);
      // A <label for="container"> focuses the field.
      if (box.id) {
        for (const l of doc.querySelectorAll(`label[for="${CSS.escape(box.id)}"]`)) this.#on(l, 'click', () => this.focus(field));
      }
      box.append(iframe);
    }
    this.#on(globalThis, 'message', (e) => this.#hello(e));
    const timer = setTimeout(() => {
      for (const f of this.#frames.values()) if (!f.port) f.reject(new FieldsealError('frame_unavailable', `the ${f.field} frame did not answer from ${this.#origin}`));
    }, timeout);
    this.#undo.push(() => clearTimeout(timer));
    this.#ready = Promise.all(readies).then(() => {
      clearTimeout(timer);
      this.#emit('ready', {});
    }, (e) => {
      this.#say(this.#errorText.unavailable ?? UNAVAILABLE);
      this.#emit('error', { code: e.code, message: e.message });
      throw e;
    });
    this.#ready.catch(() => {});
  }

  /** Resolves when every frame can be typed into and has its keys; rejects with the failure. */
  get ready() {
    return this.#ready;
  }

  /** Each field's last state: `{ empty, complete, error, brand? }` (no value, ever). */
  get state() {
    const out = {};
    for (const [k, f] of this.#frames) out[k] = { ...f.state };
    return out;
  }

  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    const l = (e) => fn(e.detail);
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  #on(target, type, fn) {
    target.addEventListener(type, fn);
    this.#undo.push(() => target.removeEventListener(type, fn));
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #say(text) {
    if (this.#messages) this.#messages.textContent = text;
  }

  #text(err) {
    return this.#errorText[err.code] ?? err.message;
  }

  // The first field in error, in the order of the form, speaks in the message element.
  #showErrors() {
    const first = [...this.#frames.values()].find((f) => f.state.error);
    this.#say(first ? this.#text(first.state.error) : '');
  }

  #hello(e) {
    const d = e.data;
    if (e.origin !== this.#origin || d?.type !== 'fieldseal:hello' || e.ports.length !== 1) return;
    const f = this.#frames.get(d.field);
    if (!f || f.port || e.source !== f.iframe.contentWindow || d.id !== f.id) return;
    f.port = e.ports[0];
    f.port.onmessage = (m) => this.#message(f, m.data);
    f.port.postMessage(f.init);
  }

  #message(f, m) {
    if (!m || typeof m !== 'object') return;
    const box = f.box;
    switch (m.type) {
      case 'ready':
        return f.resolve();
      case 'error':
        if (!f.port || m.code === 'appearance_invalid' || m.code === 'font_unavailable') return this.#emit('error', { field: f.field, code: m.code, message: m.message });
        return f.reject(new FieldsealError(m.code, m.message));
      case 'resize':
        if (Number.isFinite(m.height) && m.height > 0 && m.height < 400) f.iframe.style.height = `${m.height}px`;
        return;
      case 'focus':
      case 'blur':
        box.toggleAttribute('data-fieldseal-focus', m.type === 'focus');
        return this.#emit(m.type, { field: f.field });
      case 'state': {
        const before = f.state;
        const error = m.error && typeof m.error.code === 'string' ? { code: m.error.code, message: String(m.error.message) } : null;
        const state = { empty: !!m.empty, complete: !!m.complete, error };
        if (f.field === 'pan') {
          state.brand = typeof m.brand === 'string' ? m.brand : null;
          if (state.brand !== before.brand) {
            if (state.brand) box.setAttribute('data-brand', state.brand);
            else box.removeAttribute('data-brand');
            this.#frames.get('cvc')?.port?.postMessage({ type: 'brand', brand: state.brand });
            this.#emit('brand', { brand: state.brand });
          }
        }
        f.state = state;
        box.toggleAttribute('data-fieldseal-invalid', !!error);
        box.toggleAttribute('data-fieldseal-empty', state.empty);
        box.toggleAttribute('data-fieldseal-complete', state.complete);
        this.#emit('change', { field: f.field, ...state });
        if (error && error.code !== before.error?.code) this.#emit('invalid', { field: f.field, code: error.code, message: this.#text(error) });
        if (!error && before.error) this.#emit('valid', { field: f.field });
        return this.#showErrors();
      }
      case 'sealed': {
        const p = this.#pending.get(m.req);
        if (!p || p.field !== f.field) return;
        this.#pending.delete(m.req);
        return p.resolve(m);
      }
      default:
    }
  }

  /**
   * Seals every field: resolves to `{ pan, exp, cvc[, name] }` envelopes. Rejects with
   * FieldsealError `invalid` (its `fields` say which field failed which check; the message
   * element shows the first), or the frames' load failure.
   */
  async seal() {
    if (this.#destroyed) fail('destroyed', 'these fields were unmounted');
    await this.#ready;
    const replies = await Promise.all([...this.#frames.values()].map((f) => new Promise((resolve) => {
      const req = ++this.#req;
      this.#pending.set(req, { field: f.field, resolve });
      f.port.postMessage({ type: 'seal', req });
    }).then((r) => [f.field, r])));
    const errors = {};
    const envelopes = {};
    for (const [field, r] of replies) {
      if (r.error) errors[field] = { code: String(r.error.code), message: this.#text(r.error) };
      else if (typeof r.envelope === 'string' && r.envelope.startsWith('fse1.')) envelopes[field] = r.envelope;
      else errors[field] = { code: 'internal', message: 'the frame answered no envelope' };
    }
    const failed = Object.keys(errors);
    if (failed.length) {
      this.#say(errors[failed[0]].message);
      this.focus(failed[0]);
      throw new FieldsealError('invalid', errors[failed[0]].message, errors);
    }
    return envelopes;
  }

  /**
   * Protects `form`: on submit, seals the fields and adds them as hidden inputs named
   * `names[field]` (default `card_number`, `card_exp`, `card_cvc`, `card_name`), then submits.
   * An invalid field stops the submit. Returns `{ detach() }`.
   */
  protect(form, { names } = {}) {
    const n = { pan: 'card_number', exp: 'card_exp', cvc: 'card_cvc', name: 'card_name', ...names };
    let sealed = false;
    // A second submit while the first one is sealing is dropped: one order, not two.
    let sealing = false;
    const added = [];
    const onSubmit = (e) => {
      if (sealed) {
        sealed = false;
        return;
      }
      e.preventDefault();
      e.stopImmediatePropagation();
      if (sealing) return;
      sealing = true;
      const submitter = e.submitter;
      this.seal().finally(() => {
        sealing = false;
      }).then((envelopes) => {
        for (const h of added.splice(0)) h.remove();
        for (const [field, env] of Object.entries(envelopes)) {
          const h = form.ownerDocument.createElement('input');
          h.type = 'hidden';
          h.name = n[field];
          h.value = env;
          h.setAttribute('data-fieldseal-envelope', '');
          form.append(h);
          added.push(h);
        }
        sealed = true;
        this.#emit('sealed', { names: Object.keys(envelopes).map((k) => n[k]) });
        form.requestSubmit(submitter?.form === form ? submitter : undefined);
      }, (err) => this.#emit('blocked', { code: err.code, fields: err.fields ?? null }));
    };
    form.addEventListener('submit', onSubmit, true);
    const detach = () => {
      form.removeEventListener('submit', onSubmit, true);
      for (const h of added.splice(0)) h.remove();
    };
    this.#undo.push(detach);
    return { detach };
  }

  /** Moves the focus into a field's frame. */
  focus(field = 'pan') {
    const f = this.#frames.get(field);
    f?.iframe.focus();
    f?.port?.postMessage({ type: 'focus' });
  }

  /** Empties every field. */
  clear() {
    for (const f of this.#frames.values()) f.port?.postMessage({ type: 'clear' });
  }

  /** Removes the frames and every listener. */
  destroy() {
    this.#destroyed = true;
    for (const u of this.#undo.splice(0)) u();
    for (const f of this.#frames.values()) {
      f.port?.close();
      f.iframe.remove();
    }
  }
}
