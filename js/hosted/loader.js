// fieldseal/hosted: mounts the vault's card field frames into the merchant's page. The page never
// holds the card number: it gets envelopes and non-sensitive state (brand, empty, complete, valid,
// focus, error codes) over one MessageChannel a frame, handed over in a handshake that is checked
// on both sides (the frame sends it only to this page's origin; this page takes it only from the
// vault's origin, from that frame's window, with the nonce it put in that frame's URL). A frame
// that reloads says hello again and is adopted again; one that stops answering is replaced.
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
const RELOADED = 'The card fields stopped responding and were reloaded. Please enter the card again.';
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
  #up = false;
  #timeout;
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
    this.#timeout = timeout;

    const readies = [];
    for (const field of ORDER.filter((k) => containers[k])) {
      const box = element(doc, containers[field], `fields.${field}`);
      const label = o.labels?.[field] ?? (box.id && doc.querySelector(`label[for="${CSS.escape(box.id)}"]`)?.textContent.trim()) ?? LABELS[field];
      const f = { field, box, port: null, state: { empty: true, complete: false, error: null }, title: label || LABELS[field] };
      this.#down(f);
      readies.push(f.live);
      this.#frame(f);
      f.init = { type: 'init', label: f.title, placeholder: o.placeholders?.[field], appearance: o.appearance, lang: doc.documentElement.lang || undefined, session };
      this.#frames.set(field, f);
      // A <label for="container"> focuses the field.
      if (box.id) {
        for (const l of doc.querySelectorAll(`label[for="${CSS.escape(box.id)}"]`)) this.#on(l, 'click', () => this.focus(field));
      }
      box.append(f.iframe);
    }
    this.#on(globalThis, 'message', (e) => this.#hello(e));
    // A frame must be ready in time, not only have said hello.
    const timer = setTimeout(() => {
      for (const f of this.#frames.values()) if (!f.up) f.down(new FieldsealError('frame_unavailable', `the ${f.field} frame did not load from ${this.#origin}`));
    }, timeout);
    this.#undo.push(() => clearTimeout(timer));
    this.#ready = Promise.all(readies).then(() => {
      clearTimeout(timer);
      this.#up = true;
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

  // The field's frame, with a fresh nonce: at mount, and in place of one that stopped answering.
  #frame(f) {
    const iframe = globalThis.document.createElement('iframe');
    f.id = nonce();
    iframe.src = `${this.#origin}/fields/v1/frame.html?field=${f.field}&origin=${encodeURIComponent(globalThis.location.origin)}#${f.id}`;
    iframe.title = f.title;
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    iframe.setAttribute('allow', 'payment \'none\'');
    iframe.setAttribute('frameborder', '0');
    iframe.setAttribute('scrolling', 'no');
    iframe.style.cssText = 'display:block;width:100%;height:46px;border:0;overflow:hidden;color-scheme:normal';
    f.iframe?.replaceWith(iframe);
    f.iframe = iframe;
  }

  // The field is not ready (at mount, reloading, replaced): `live` settles when it is, or fails.
  #down(f) {
    if (f.up === false) return;
    f.up = false;
    f.live = new Promise((resolve, reject) => {
      f.go = resolve;
      f.down = reject;
    });
    f.live.catch(() => {});
  }

  // Every document of the frame says hello once: the first one, and again after a reload (the
  // page navigated or reloaded it). The newest is adopted; the port of the one before is closed.
  #hello(e) {
    const d = e.data;
    if (e.origin !== this.#origin || d?.type !== 'fieldseal:hello' || e.ports.length !== 1) return;
    const f = this.#frames.get(d.field);
    if (!f || e.source !== f.iframe.contentWindow || d.id !== f.id) return;
    this.#down(f);
    f.port?.close();
    const port = e.ports[0];
    f.port = port;
    port.onmessage = (m) => this.#message(f, m.data);
    port.postMessage(f.init);
  }

  #message(f, m) {
    if (!m || typeof m !== 'object') return;
    const box = f.box;
    switch (m.type) {
      case 'ready': {
        f.up = true;
        // A CVC frame that reloaded learns the brand again.
        const brand = this.#frames.get('pan').state.brand;
        if (f.field === 'cvc' && brand) f.port.postMessage({ type: 'brand', brand });
        return f.go();
      }
      case 'error': {
        // The frame stays when its appearance or font was refused. A frame that failed to load
        // fails its readiness: at mount, `ready` reports it; after a reload, this event.
        const stays = m.code === 'appearance_invalid' || m.code === 'font_unavailable';
        if (stays || this.#up) this.#emit('error', { field: f.field, code: m.code, message: m.message });
        if (!stays) f.down(new FieldsealError(m.code, m.message));
        return;
      }
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

  // Asks one frame to seal, once it is ready: its answer, or null when none came in time.
  #ask(f) {
    return new Promise((resolve) => {
      const req = ++this.#req;
      const timer = setTimeout(() => {
        this.#pending.delete(req);
        resolve(null);
      }, this.#timeout);
      const done = (r) => {
        clearTimeout(timer);
        this.#pending.delete(req);
        resolve(r);
      };
      this.#pending.set(req, { field: f.field, resolve: done });
      f.live.then(() => f.port?.postMessage({ type: 'seal', req }), (error) => done({ error }));
    });
  }

  /**
   * Seals every field: resolves to `{ pan, exp, cvc[, name] }` envelopes. Rejects with
   * FieldsealError `invalid` (its `fields` say which field failed which check; the message
   * element shows the first), `frame_unavailable` when a frame did not answer within `timeout`
   * (it is replaced by a new one, empty), or the frames' load failure.
   */
  async seal() {
    if (this.#destroyed) fail('destroyed', 'these fields were unmounted');
    await this.#ready;
    const frames = [...this.#frames.values()];
    const asked = frames.map((f) => f.iframe);
    const replies = await Promise.all(frames.map((f) => this.#ask(f)));
    const lost = frames.filter((f, i) => !replies[i]);
    if (lost.length) {
      // Replaced once, when two seals waited on the same frame.
      for (const f of lost.filter((f) => asked.includes(f.iframe))) {
        this.#down(f);
        f.port?.close();
        f.port = null;
        this.#frame(f);
      }
      const e = new FieldsealError('frame_unavailable', `the ${lost.map((f) => f.field).join(', ')} frame did not answer within ${this.#timeout} ms and was reloaded`);
      this.#say(this.#errorText.frame_unavailable ?? RELOADED);
      throw e;
    }
    const errors = {};
    const envelopes = {};
    for (const [i, r] of replies.entries()) {
      const { field } = frames[i];
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
    // True only during our own requestSubmit(): its submit event (dispatched within the call)
    // goes through. When the call fires none (the form's own validation stops it), the next
    // submit seals again.
    let sealed = false;
    // A second submit while the first one is sealing is dropped: one order, not two.
    let sealing = false;
    const added = [];
    const onSubmit = (e) => {
      if (sealed) return;
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
        this.#emit('sealed', { names: Object.keys(envelopes).map((k) => n[k]) });
        sealed = true;
        try {
          form.requestSubmit(submitter?.form === form ? submitter : undefined);
        } finally {
          sealed = false;
        }
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
