// sealer.protect(form, options): finds the sensitive fields of a form, formats and validates them
// as the user types, and on submit seals each value into a hidden input carrying the field's name
// while the plaintext input loses its `name`, so only envelopes are posted. The inputs stay the
// page's own inputs with their `autocomplete` attributes, so browser autofill keeps working.

// Lookup tables have no prototype, so a token such as `constructor` or a polluted
// Object.prototype finds nothing in them.
// autocomplete tokens (HTML "autofill detail tokens") that mark a field fieldseal protects. The
// expiry's month and year (often <select>s) are sealed each as `text`: the vault's `exp` kind is
// a whole date.
const AUTOCOMPLETE_KINDS = {
  __proto__: null,
  'cc-number': 'pan',
  'cc-csc': 'cvc',
  'cc-exp': 'exp',
  'cc-exp-month': 'text',
  'cc-exp-year': 'text',
  'cc-name': 'name',
  email: 'email',
  tel: 'phone',
  'tel-national': 'phone',
  bday: 'birth-date',
};
// Card number and security code inputs without an autocomplete token of the table above, by their
// name or id: see nameKind.
const NAME_KINDS = { __proto__: null };
for (const n of 'ccnum ccnumber cardnum cardnumber cardno ccno creditcardnumber'.split(' ')) NAME_KINDS[n] = 'pan';
for (const n of 'cvc cvc2 cvv cvv2 csc cvn securitycode cardcode cardcvc cardcvv cccsc cccvc cccvv'.split(' ')) NAME_KINDS[n] = 'cvc';
const KINDS = new Set(['pan', 'cvc', 'exp', 'name', 'email', 'phone', 'address', 'postal-code', 'birth-date',
  'national-id', 'iban', 'text']);
const SKIP_TYPES = new Set(['submit', 'button', 'reset', 'image', 'file', 'checkbox', 'radio']);
// Inputs a shopper types into: only these are recognised by name or id, and only their values are
// joined as the parts of a split card number (not a hidden input's, a select's or a text area's).
const TYPED = new Set(['text', 'tel', 'number', 'password', 'search']);
const typed = (el) => el.localName === 'input' && TYPED.has(el.type);
// Digits as the wasm counts them: ASCII and full-width (U+FF10 to U+FF19).
const NON_DIGITS = /[^\d\uff10-\uff19]/g;

// Parts before a card number's name that make it another card's: `gift[card][number]`.
const OTHER_CARDS = /^(gift|loyalty|member|membership|rewards?|id)(card)?$/;

/**
 * The kind a name or id says (`card_number`, `payment[cvv]`, `card[number]`, `cvc[]`, `cvv[0]`): its
 * last part or its last two (`card` + `number`), lowercased and without separators; array
 * indexes (`[]`, `[0]`) are left out. None when the part before those names another card
 * (`gift[card][number]`, `loyalty[card_number]`, `member[card][no]`).
 */
function nameKind(v) {
  const parts = (v ?? '').toLowerCase().split(/[[\]]/).filter((p) => p && !/^\d+$/.test(p)).map((p) => p.replace(/[^a-z\d]/g, ''));
  for (const n of [1, 2]) {
    const kind = parts.length >= n && NAME_KINDS[parts.slice(-n).join('')];
    if (kind) return OTHER_CARDS.test(parts.at(-n - 1) ?? '') ? undefined : kind;
  }
}

const DEFAULT_MESSAGES = {
  required: 'This field is required.',
  email_invalid: 'Enter a valid e-mail address.',
  phone_invalid: 'Enter a valid phone number.',
  stray_card_number: 'A card number can only be entered in the card number field.',
  unavailable: 'Secure payment is unavailable right now. Please try again later.',
};

const messagesOf = (options) => ({ __proto__: null, ...DEFAULT_MESSAGES, ...options.messages });

/** The kind a field is protected as, or null. */
function kindOf(el) {
  const marked = el.getAttribute('data-seal');
  if (marked === 'off') return null;
  if (KINDS.has(marked)) return marked;
  for (const t of (el.getAttribute('autocomplete') ?? '').toLowerCase().split(/\s+/)) {
    if (AUTOCOMPLETE_KINDS[t]) return AUTOCOMPLETE_KINDS[t];
  }
  // By name or id: typed inputs only (a hidden `card_number` is the page's, not the shopper's:
  // see hiddenPan).
  return (typed(el) && byName(el)) || null;
}
const byName = (el) => nameKind(el.getAttribute('name')) ?? nameKind(el.id);

/**
 * A hidden input named like a card number field (the raw digits behind a formatted visible input,
 * or a saved card's token): sealed as a card number when its value is one, else left as it is.
 */
const hiddenPan = (el) => el.type === 'hidden' && byName(el) === 'pan';

/**
 * Whether the shopper cannot see or change `el` (a hidden, read-only or unrendered field): the
 * stray guard never blocks on one, it seals it instead.
 */
const unfixable = (el) => el.type === 'hidden' || el.readOnly || !el.getClientRects().length;

/**
 * Runs `strip` on every form data set built from `form`, before and after each listener the page
 * can have: in capture on the window (before listeners on the document and the form) and on the
 * form (one in a shadow root: formdata does not leave it), then in bubble on the form and on the
 * window, after page listeners on the form that add entries (registered before or after this).
 * Returns the undo.
 */
function guardFormData(form, strip) {
  const fn = (e) => e.target === form && strip(e.formData);
  const at = [[form, true], [form, false]];
  const win = form.ownerDocument.defaultView;
  if (win) at.push([win, true], [win, false]);
  for (const [t, capture] of at) t.addEventListener('formdata', fn, capture);
  return () => {
    for (const [t, capture] of at) t.removeEventListener('formdata', fn, capture);
  };
}

/**
 * The indexes of `values` that hold a card number (`contains`): on their own, or together with
 * their neighbours when consecutive short digit-only values of typed inputs (`joinable(i)`: a
 * number split over several inputs) hold one joined; then the shortest such stretch. Other
 * values between them (a hidden input, a select) neither join nor break the run.
 */
function strayIndexes(values, contains, joinable) {
  const found = new Set();
  let run = [];
  const holds = (r) => r.length > 1 && contains(r.map((i) => values[i]).join(' '));
  const flush = () => {
    // The shortest stretch of the run that holds a card number (not the quantity next to it).
    let best = holds(run) ? run : [];
    for (let a = 0; a < run.length; a++) {
      for (let b = a + 2; b <= run.length; b++) if (b - a < best.length && holds(run.slice(a, b))) best = run.slice(a, b);
    }
    for (const i of best) found.add(i);
    run = [];
  };
  values.forEach((v, i) => {
    if (typeof v !== 'string' || v.startsWith('fse1.')) return flush();
    if (v && contains(v)) found.add(i);
    if (!joinable(i)) return;
    if (/^\s*[\d\uff10-\uff19]{1,6}\s*$/.test(v)) run.push(i);
    else flush();
  });
  flush();
  return found;
}

/** The indexes of a form data set's `entries` holding a card number (`contains`), as above. */
function strayEntries(form, entries, contains) {
  // Whether every control of the form with that name is a typed input.
  const byName = new Map();
  for (const el of form.elements) if (el.name) byName.set(el.name, byName.get(el.name) !== false && typed(el));
  return strayIndexes(entries.map(([, v]) => v), contains, (i) => byName.get(entries[i][0]) === true);
}

/**
 * An expiry as typed at the end of its field, with its ` / `: "4" becomes "04 / ", "1230" becomes
 * "12 / 30"; anything else is returned as it is.
 */
export function expiryAsTyped(value) {
  const digits = value.replace(/\D/g, '');
  if (digits.length > 6 || /[^\d\s/]/.test(value)) return value;
  if (digits.length === 1) return digits > '1' ? `0${digits} / ` : digits;
  if (digits.length === 2) return Number(digits) >= 1 && Number(digits) <= 12 ? `${digits} / ` : value;
  return `${digits.slice(0, 2)} / ${digits.slice(2)}`;
}

let nextId = 0;

// Forms protect() is looking after (or holding closed until the sealer is ready).
const guarded = new WeakSet();

// What labels, placeholders, names and ids say, in that order of the table.
const WORDS = [
  [/card.?(number|num|no\b)|credit.?card|\d{4}[ -]\d{4}[ -]\d{4}/i, 'pan'],
  [/\b(cvc|cvv|csc)\d?\b|security.?code/i, 'cvc'],
  [/expir|\bmm ?\/ ?yy/i, 'exp'],
  [/e-?mail|\w@\w/i, 'email'],
  [/phone|mobile|\btel\b/i, 'phone'],
  [/\biban\b/i, 'iban'],
  [/birth|\bdob\b/i, 'birth-date'],
  [/social.?security|\bssn\b|passport|national.?id/i, 'national-id'],
];
const TYPE_KINDS = { __proto__: null, email: 'email', tel: 'phone' };

/**
 * The inputs under `root` that look like card or personal data but are neither protected (a
 * field of a form protect() looks after) nor marked `data-seal="off"`: `{ element, kind, reason }`,
 * `reason` naming what gave it away (`autocomplete`, `type`, `name`, `id`, `label`, `placeholder`,
 * `value`: a sample of the value, classified; the value itself is never in the result).
 */
export function scanFields(sealer, root) {
  const found = [];
  for (const el of root.querySelectorAll('input, textarea, select')) {
    if (SKIP_TYPES.has(el.type) || el.hasAttribute('data-fieldseal-envelope') || el.getAttribute('data-seal') === 'off') continue;
    if (guarded.has(el.form) && (kindOf(el) || hiddenPan(el))) continue;
    const words = (t) => t && WORDS.find(([re]) => re.test(t))?.[1];
    const label = [...(el.labels ?? []), el].map((l) => l === el ? el.getAttribute('aria-label') : l.textContent).join(' ');
    const tokens = (el.getAttribute('autocomplete') ?? '').toLowerCase().split(/\s+/);
    const clues = [
      ['autocomplete', tokens.map((t) => AUTOCOMPLETE_KINDS[t]).find(Boolean)],
      ['type', TYPE_KINDS[el.type]],
      ...['name', 'id'].map((a) => {
        const v = el.getAttribute(a);
        return [a, nameKind(v) || words(v?.replace(/[-_[\]]/g, ' '))];
      }),
      ['label', words(label)],
      ['placeholder', words(el.getAttribute('placeholder'))],
      ['value', el.value && sealer.fieldKindFor(sealer.classify(el.value.slice(0, 256)).kinds[0] ?? '')],
    ];
    // A hidden input is the page's own: only what it holds can give it away.
    const hit = clues.find(([reason, kind]) => kind && (reason === 'value' || el.type !== 'hidden'));
    if (hit) found.push({ element: el, kind: hit[1], reason: hit[0] });
  }
  return found;
}

// Elements already named in a console warning (each is warned about once).
const warned = new WeakSet();

function warnUnprotected(sealer, doc) {
  for (const { element: el, kind, reason } of scanFields(sealer, doc)) {
    if (warned.has(el)) continue;
    warned.add(el);
    const name = el.getAttribute('name');
    console.warn(`fieldseal: unprotected ${kind} field <${el.localName}${name ? ` name="${name}"` : ''}${el.id ? ` id="${el.id}"` : ''}> (by its ${reason}); protect its form or mark it data-seal="off"`);
  }
}

/**
 * Protects `form` with `sealer`, or with the promise of one (`load()` not awaited): until it
 * resolves, a submit waits, closed, and goes ahead (checked and sealed) once it does; if it
 * rejects, the form stays closed with a message and a `fieldseal:error` event.
 */
export function protectForm(sealer, form, options) {
  // Own properties only: a polluted Object.prototype (`strayPan: 'off'`) is not an option.
  options = { __proto__: null, ...options };
  return typeof sealer?.then === 'function' ? protectPending(sealer, form, options) : protectNow(sealer, form, options);
}

// A form's values before the sealer exists: no protected field, and no value holding 12 or more
// digits (the card number check itself needs the wasm), is posted or put in a FormData.
function protectPending(promise, form, options) {
  let inner = null;
  let failure = null;
  let waiting = null;
  let note = null;
  const doc = form.ownerDocument;
  const emitError = () =>
    form.dispatchEvent(new (doc.defaultView.CustomEvent)('fieldseal:error', {
      bubbles: true,
      detail: { code: failure.code ?? 'internal', message: String(failure.message ?? failure) },
    }));
  const onSubmit = (e) => {
    if (inner) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (failure) emitError();
    else waiting = { submitter: e.submitter };
  };
  const onFormData = (data) => {
    if (inner) return;
    const sealed = new Set(Array.from(form.elements, (el) => kindOf(el) && el.name));
    const entries = Array.from(data.entries());
    const strays = strayEntries(form, entries, (v) => v.replace(NON_DIGITS, '').length >= 12);
    entries.forEach(([name, v], i) => {
      if (typeof v !== 'string' || sealed.has(name) || strays.has(i)) data.delete(name);
    });
  };
  const closed = closeSubmit(form);
  guarded.add(form);
  form.addEventListener('submit', onSubmit, true);
  const unguard = guardFormData(form, onFormData);
  let detached = false;
  promise.then((sealer) => {
    if (detached) return;
    inner = protectNow(sealer, form, options);
    if (waiting) {
      const { submitter } = waiting;
      waiting = null;
      form.requestSubmit(submitter?.form === form ? submitter : null);
    }
  }, (err) => {
    if (detached) return;
    failure = err ?? {};
    waiting = null;
    note = doc.createElement('p');
    note.className = 'fieldseal-message';
    note.setAttribute('role', 'alert');
    note.textContent = messagesOf(options).unavailable;
    form.append(note);
    emitError();
  });
  return {
    get fields() {
      return inner ? inner.fields : [];
    },
    validate: () => !!inner && inner.validate(),
    detach() {
      detached = true;
      inner?.detach();
      note?.remove();
      form.removeEventListener('submit', onSubmit, true);
      unguard();
      closed();
      guarded.delete(form);
    },
  };
}

/**
 * form.submit() fires no submit event and would post the plaintext: it is routed through
 * requestSubmit(), which does. A control named "submit" shadows the method and cannot be
 * overridden (the assignment throws); then the formdata backstop still keeps plaintext out of a
 * native submit. Returns the undo.
 */
function closeSubmit(form) {
  const hadOwnSubmit = Object.prototype.hasOwnProperty.call(form, 'submit');
  const ownSubmit = form.submit;
  try {
    Object.defineProperty(form, 'submit', {
      value: () => form.requestSubmit(),
      configurable: true,
      writable: true,
    });
  } catch {
    return () => {};
  }
  return () => {
    if (hadOwnSubmit) form.submit = ownSubmit;
    else delete form.submit;
  };
}

function protectNow(sealer, form, options) {
  const doc = form.ownerDocument;
  const strayPan = options.strayPan ?? 'block';
  if (!['block', 'seal', 'off'].includes(strayPan)) throw new TypeError('strayPan must be "block", "seal" or "off"');
  const messages = messagesOf(options);
  const card = sealer.card;
  const contains = (v) => sealer.containsCardNumber(v);
  const prefix = `fieldseal-${++nextId}`;

  // Every field seen so far. A field added to the form after protect() is taken in when the form
  // changes (MutationObserver) and, at the latest, at submit; a field removed from the form is
  // left out of validation and sealing.
  const fields = [];
  const others = [];
  const seen = new Set();
  let panField = null;
  let brand = null;
  const inForm = (x) => x.el.form === form;

  const saved = new Map();
  const remember = (el) => {
    if (!saved.has(el)) {
      saved.set(el, {
        name: el.getAttribute('name'),
        invalid: el.getAttribute('aria-invalid'),
        describedby: el.getAttribute('aria-describedby'),
      });
    }
  };
  const listeners = [];
  const on = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    listeners.push(() => target.removeEventListener(type, fn, opts));
  };
  const emit = (target, type, detail, cancelable = false) =>
    target.dispatchEvent(new (doc.defaultView.CustomEvent)(`fieldseal:${type}`, { bubbles: true, cancelable, detail }));

  // Accessible messages: one live element per field, referenced by aria-describedby.
  const messageEls = new Map();
  function showError(el, kind, code, message) {
    remember(el);
    let m = messageEls.get(el);
    if (!m) {
      m = doc.createElement('span');
      m.id = `${prefix}-msg-${messageEls.size}`;
      m.className = 'fieldseal-message';
      m.setAttribute('aria-live', 'polite');
      el.insertAdjacentElement('afterend', m);
      messageEls.set(el, m);
      const ids = (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean);
      el.setAttribute('aria-describedby', [...ids, m.id].join(' '));
    }
    m.textContent = message;
    el.setAttribute('aria-invalid', 'true');
    emit(el, 'invalid', { kind, code, message, name: saved.get(el)?.name ?? el.getAttribute('name') });
  }
  function clearError(el, kind) {
    const m = messageEls.get(el);
    if (m) m.textContent = '';
    if (el.getAttribute('aria-invalid') === 'true') {
      el.removeAttribute('aria-invalid');
      emit(el, 'valid', { kind });
    }
  }

  /** null when valid, else { code, message }. */
  function validate(f) {
    const value = f.el.value;
    if (value.trim() === '') {
      if (!f.el.required) return null;
      const r = f.kind === 'pan' ? card.validatePan('') : { code: 'required', message: messages.required };
      return { code: r.code, message: msg(r.code, r.message) };
    }
    let r = { valid: true };
    switch (f.kind) {
      case 'pan':
        r = card.validatePan(value);
        break;
      case 'cvc':
        // The brand of the number as it is now, even if it was set without an input event.
        r = card.validateCvc(value, panField ? card.brand(panField.el.value) : null);
        break;
      case 'exp':
        r = card.validateExpiry(value);
        break;
      case 'email':
        if (!sealer.classify(value).kinds.includes('email')) r = { valid: false, code: 'email_invalid' };
        break;
      case 'phone':
        if (!sealer.classify(value).kinds.includes('phone')) r = { valid: false, code: 'phone_invalid' };
        break;
      default:
    }
    return r.valid ? null : { code: r.code, message: msg(r.code, r.message) };
  }
  const msg = (code, fallback) => messages[code] ?? fallback ?? code;

  function check(f) {
    const err = validate(f);
    if (err) showError(f.el, f.kind, err.code, err.message);
    else clearError(f.el, f.kind);
    return !err;
  }

  // As-you-type card number formatting, keeping the caret after the digit it followed.
  // As-you-type expiry formatting while the user types at the end of the field: "4" becomes
  // "04 / ", "1230" becomes "12 / 30"; deleting, pasting a full date or editing in the middle is
  // left alone (the validation accepts MM/YY, MM/YYYY and MM / YY as typed).
  function onExpInput(e) {
    const el = e.target;
    if (e.inputType !== 'insertText' || el.selectionStart !== el.value.length) return;
    const text = expiryAsTyped(el.value);
    if (text !== el.value) {
      el.value = text;
      if (doc.activeElement === el) el.setSelectionRange(text.length, text.length);
    }
  }

  function onPanInput(e) {
    const el = e.target;
    if (options.format !== false) {
      const caret = el.selectionStart ?? el.value.length;
      const f = card.format(el.value, caret);
      if (f.text !== el.value) {
        el.value = f.text;
        if (doc.activeElement === el) el.setSelectionRange(f.caret, f.caret);
      }
    }
    const b = card.brand(el.value);
    if (b !== brand) {
      brand = b;
      if (b) el.setAttribute('data-brand', b);
      else el.removeAttribute('data-brand');
      emit(el, 'brand', { brand: b });
    }
    if (el.getAttribute('aria-invalid') === 'true') check(panField);
  }

  function watch(f) {
    remember(f.el);
    if (f.kind === 'pan') on(f.el, 'input', onPanInput);
    if (f.kind === 'exp' && options.format !== false) on(f.el, 'input', onExpInput);
    on(f.el, 'blur', () => {
      if (f.el.value !== '') check(f);
    });
    if (f.kind !== 'pan') {
      on(f.el, 'input', () => {
        if (f.el.getAttribute('aria-invalid') === 'true') check(f);
      });
    }
  }

  /** Takes in the form's fields not seen before. */
  function scan() {
    for (const el of Array.from(form.elements)) {
      if (seen.has(el) || !['input', 'textarea', 'select'].includes(el.localName)) continue;
      if (SKIP_TYPES.has(el.type) || el.hasAttribute('data-fieldseal-envelope')) continue;
      seen.add(el);
      const kind = kindOf(el);
      if (kind) {
        const f = { el, kind, name: el.getAttribute('name') };
        fields.push(f);
        if (kind === 'pan' && !panField) panField = f;
        watch(f);
      } else if (el.getAttribute('data-seal') !== 'off') {
        others.push({ el, name: el.getAttribute('name') });
      }
    }
  }
  scan();
  guarded.add(form);
  if (options.warnUnprotected) warnUnprotected(sealer, doc);
  const Observer = doc.defaultView?.MutationObserver;
  if (Observer) {
    const observer = new Observer(scan);
    observer.observe(form, { childList: true, subtree: true });
    listeners.push(() => observer.disconnect());
  }

  const hidden = [];
  function addEnvelope(name, envelope) {
    const h = doc.createElement('input');
    h.type = 'hidden';
    h.name = name;
    h.value = envelope;
    h.setAttribute('data-fieldseal-envelope', '');
    form.appendChild(h);
    hidden.push(h);
  }
  function stripName(el) {
    remember(el);
    el.removeAttribute('name');
  }

  // True while a submit is being handled: the browser builds the form data set after the submit
  // event, in the same task, so detach() must not restore plaintext names until the next task.
  let submitting = false;

  // Fails closed: whatever goes wrong while checking or sealing, the submit is stopped, partial
  // envelopes are removed, and an `error` event says why. Plaintext is never posted.
  function onSubmit(e) {
    submitting = true;
    setTimeout(() => {
      submitting = false;
    }, 0);
    try {
      checkAndSeal(e);
    } catch (err) {
      for (const h of hidden.splice(0)) h.remove();
      e.preventDefault();
      e.stopImmediatePropagation();
      emit(form, 'error', { code: err?.code ?? 'internal', message: String(err?.message ?? err) });
    }
  }

  function checkAndSeal(e) {
    // Envelopes of an earlier attempt (a fetch-based checkout that stayed on the page) are replaced.
    for (const h of hidden.splice(0)) h.remove();
    scan();
    const live = fields.filter(inForm);
    const liveOthers = others.filter(inForm);
    let firstInvalid = null;
    for (const f of live) {
      if (!check(f)) firstInvalid ??= f.el;
    }
    const found = strayPan === 'off' ? new Set() : strayIndexes(liveOthers.map((o) => o.el.value), contains, (i) => typed(liveOthers[i].el));
    const isPan = (o) => card.validatePan(o.el.value).valid;
    // Sealed in every mode: a hidden input named like a card number field that holds one. Never
    // blocked on: a stray the shopper cannot see or change (sealed instead).
    const quiet = liveOthers.filter((o, i) => (hiddenPan(o.el) && isPan(o)) || (found.has(i) && unfixable(o.el)));
    const strays = liveOthers.filter((o, i) => found.has(i) && !quiet.includes(o));
    if (strayPan === 'block') {
      for (const o of strays) {
        showError(o.el, null, 'stray_card_number', messages.stray_card_number);
        firstInvalid ??= o.el;
      }
      for (const o of liveOthers) if (!strays.includes(o)) clearError(o.el, null);
    }
    if (firstInvalid) {
      e.preventDefault();
      e.stopImmediatePropagation();
      firstInvalid.focus();
      emit(form, 'blocked', { reason: strays.length && strayPan === 'block' ? 'stray_card_number' : 'invalid' });
      return;
    }
    try {
      const sealed = [];
      for (const f of live) {
        const name = saved.get(f.el)?.name ?? f.name;
        const value = f.el.value;
        if (name && value.trim() !== '') {
          addEnvelope(name, sealer.seal(value, { kind: f.kind, context: options.context }));
          sealed.push(name);
        }
        stripName(f.el);
      }
      for (const o of strayPan === 'seal' ? [...quiet, ...strays] : quiet) {
        const name = saved.get(o.el)?.name ?? o.name;
        if (name) addEnvelope(name, sealer.seal(o.el.value, { kind: isPan(o) ? 'pan' : 'text', context: options.context }));
        stripName(o.el);
        sealed.push(name);
      }
      emit(form, 'sealed', { names: sealed });
    } catch (err) {
      // Never post plaintext: undo the partial work, stop the submit, report.
      for (const h of hidden.splice(0)) h.remove();
      e.preventDefault();
      e.stopImmediatePropagation();
      emit(form, 'error', { code: err.code ?? 'internal', message: err.message });
    }
  }
  on(form, 'submit', onSubmit, { capture: true });
  // Backstop for every way of reading the form that skips the submit event
  // (HTMLFormElement.prototype.submit.call(form), new FormData(form)) and for page listeners that
  // add entries: a protected field's entry that is not an envelope is removed, and so is a hidden
  // card number field's holding a card number, and any other entry holding a card number unless
  // the guard is off. The data then lacks those fields instead of carrying them in the clear.
  listeners.push(guardFormData(form, (data) => {
    scan();
    for (const f of fields) {
      const name = saved.get(f.el)?.name ?? f.name;
      if (!name) continue;
      const values = data.getAll(name);
      if (values.some((v) => typeof v !== 'string' || !v.startsWith('fse1.'))) {
        data.delete(name);
        for (const v of values) if (typeof v === 'string' && v.startsWith('fse1.')) data.append(name, v);
      }
    }
    for (const el of form.elements) if (hiddenPan(el) && el.name && card.validatePan(el.value).valid) data.delete(el.name);
    if (strayPan !== 'off') {
      const entries = Array.from(data.entries());
      for (const i of strayEntries(form, entries, contains)) data.delete(entries[i][0]);
    }
  }));
  listeners.push(closeSubmit(form));

  return {
    /** The protected fields: `{ name, kind, element }`. */
    get fields() {
      return fields.filter(inForm).map((f) => ({ name: saved.get(f.el)?.name ?? f.name, kind: f.kind, element: f.el }));
    },
    /** Validates every protected field now (shows messages); true when all are valid. */
    validate() {
      scan();
      return fields.filter(inForm).map(check).every(Boolean);
    },
    /** Removes every listener, message and envelope input, and restores names and ARIA attributes. */
    detach() {
      guarded.delete(form);
      for (const off of listeners.splice(0)) off();
      // Called while a submit is in flight (from a `sealed` handler, say): the form data is built
      // after the handlers return, so the restoring waits for the next task.
      if (submitting) setTimeout(restore, 0);
      else restore();
    },
  };

  /** Removes messages and envelope inputs, and restores names and ARIA attributes. */
  function restore() {
    for (const h of hidden.splice(0)) h.remove();
    for (const m of messageEls.values()) m.remove();
    messageEls.clear();
    for (const [el, s] of saved) {
      const put = (attr, v) => (v === null ? el.removeAttribute(attr) : el.setAttribute(attr, v));
      put('name', s.name);
      put('aria-invalid', s.invalid);
      put('aria-describedby', s.describedby);
      el.removeAttribute('data-brand');
    }
    saved.clear();
  }
}
