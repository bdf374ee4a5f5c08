// The operator console: sign in as one of the vault's operators (name, password, TOTP code; the
// vault's session token stays in this page's memory and goes with each call), list the
// shop's orders, reveal their tokens for a stated purpose, and show the vault's audit trail with
// the chain's verification, and (for roles that read the audit log or unlock callers) every API
// key's and operator's state and reveal lock, with an Unlock button for the security role. What a
// reveal shows is the vault's decision for the operator's role;
// a reveal in the clear more than the vault's step-up window after the last code asks for a new
// code first, then runs again.
import { brandName } from './brands.js';
import { money } from './cart.js';

let session = null;
let permissions = null;
const $ = (id) => document.getElementById(id);

const FIELDS = [
  ['card', 'Card number', true],
  ['email', 'E-mail', true],
  ['phone', 'Phone', false],
  ['holder', 'Name', false],
  ['exp', 'Expiry', false],
  ['cvc', 'Security code', false],
];

/** Calls the console API; network failures and non-JSON answers become { status: 0, body.error }. */
async function api(path, body) {
  try {
    const r = await fetch(`/console/api/${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        ...(session ? { authorization: `Bearer ${session}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  } catch (e) {
    return { status: 0, body: { error: { code: 'unreachable', message: `the console API did not answer (${e.message})` } } };
  }
}
const why = (r) => r.body.error?.message ?? `HTTP ${r.status}`;

const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
};

function describePermissions(p) {
  const parts = [];
  if (p.reveal_plain.length) parts.push(`reveals ${p.reveal_plain.join(', ')} in the clear`);
  if (p.reveal_masked.length) parts.push(`${p.reveal_plain.length ? 'others' : 'reveals'} ${p.reveal_masked.length > 8 ? 'all other kinds' : p.reveal_masked.join(', ')} masked`);
  if (p.tokenize.length && !parts.length) parts.push('may tokenize but not reveal');
  if (p.audit) parts.push('reads the audit log');
  if (p.export) parts.push("exports a customer's data");
  if (p.erase) parts.push("erases a customer's data");
  if (p.unlock) parts.push('unlocks callers locked for a reveal anomaly');
  return parts.length ? `This role ${parts.join('; ')}.` : 'This role may not reveal anything.';
}

/** Shows the signed-in operator (`me`: the vault's `GET /v1/me`), the orders and the audit trail. */
async function showSession(me) {
  $('signin').hidden = true;
  $('session').hidden = false;
  $('operator-name').textContent = me.operator?.name ?? me.key_id;
  $('role').textContent = me.role;
  permissions = me.permissions;
  showStepUpUntil(me.operator?.step_up_until);
  $('permissions').textContent = describePermissions(me.permissions);
  document.body.dataset.role = me.role;
  await Promise.all([showOrders(), showAudit(), showCallers()]);
}

function showStepUpUntil(until) {
  $('step-up-until').textContent = until && permissions?.reveal_plain?.length
    ? `Values in the clear without a new code until ${new Date(until * 1000).toLocaleTimeString()}.`
    : '';
}

async function signIn(e) {
  e.preventDefault();
  const r = await api('sign-in', { name: $('operator').value.trim(), password: $('password').value, totp: $('totp').value.trim() });
  $('password').value = '';
  $('totp').value = '';
  if (r.status !== 200) {
    $('signin-error').textContent = `Sign-in refused: ${why(r)}`;
    $('signin-error').hidden = false;
    return;
  }
  $('signin-error').hidden = true;
  session = r.body.session;
  const me = await api('me');
  if (me.status !== 200) return showSignIn(`Sign-in refused: ${why(me)}`);
  await showSession(me.body);
}

function showSignIn(message) {
  session = null;
  permissions = null;
  $('session').hidden = true;
  $('stepup').hidden = true;
  $('signin').hidden = false;
  $('signin-error').hidden = !message;
  $('signin-error').textContent = message ?? '';
  $('orders').replaceChildren();
  delete document.body.dataset.role;
}

async function signOut() {
  await api('sign-out', {});
  showSignIn();
}

/**
 * Runs `call` (a console API call); when the vault asks for a second factor first
 * (`step_up_required`), asks for a code, records it, and runs `call` once more. Cancelling gives
 * the refusal.
 */
async function withStepUp(call) {
  const r = await call();
  if (r.status !== 403 || r.body.error?.code !== 'step_up_required') return r;
  const ok = await new Promise((resolve) => {
    const form = $('stepup');
    form.hidden = false;
    $('stepup-error').hidden = true;
    $('stepup-code').value = '';
    $('stepup-code').focus();
    const done = (value) => {
      form.hidden = true;
      form.onsubmit = null;
      $('stepup-cancel').onclick = null;
      resolve(value);
    };
    $('stepup-cancel').onclick = () => done(false);
    form.onsubmit = async (e) => {
      e.preventDefault();
      const s = await api('step-up', { totp: $('stepup-code').value.trim() });
      $('stepup-code').value = '';
      if (s.status === 200) {
        showStepUpUntil(s.body.step_up_until);
        done(true);
      } else if (s.status === 401 && s.body.error?.code !== 'step_up_failed') {
        done(false);
        showSignIn(`Signed out: ${why(s)}`);
      } else {
        $('stepup-error').textContent = `Code refused: ${why(s)}`;
        $('stepup-error').hidden = false;
      }
    };
  });
  return ok ? call() : r;
}

async function showOrders() {
  const r = await api('orders');
  if (r.status !== 200) {
    $('no-orders').hidden = false;
    $('no-orders').textContent = `Orders unavailable: ${why(r)}`;
    return;
  }
  $('no-orders').hidden = r.body.orders.length > 0;
  $('orders').replaceChildren(...r.body.orders.map(orderCard));
}

function orderCard(order) {
  const results = el('dl', { className: 'reveals' });
  const purpose = el('input', { type: 'text', required: true, maxLength: 200, placeholder: 'e.g. refund request 5531', className: 'purpose' });
  purpose.setAttribute('aria-label', `Purpose of the reveal for ${order.id}`);
  const boxes = FIELDS.map(([name, label, checked]) => {
    const box = el('input', { type: 'checkbox', checked, value: name });
    return el('label', { className: 'check' }, box, ` ${label}`);
  });
  const error = el('p', { className: 'form-error', hidden: true });
  error.setAttribute('role', 'alert');
  const form = el('form', { className: 'reveal' },
    el('label', {}, 'Purpose ', purpose), el('div', { className: 'checks' }, ...boxes),
    el('button', { className: 'button', textContent: 'Reveal' }), error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const names = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value);
    const r = await withStepUp(() => api('reveal', { tokens: names.map((n) => order.tokens[n]), purpose: purpose.value }));
    results.replaceChildren();
    error.hidden = r.status === 200;
    if (r.status !== 200) {
      error.textContent = `Refused: ${why(r)}`;
    } else {
      r.body.results.forEach((res, i) => {
        const label = FIELDS.find(([n]) => n === names[i])[1];
        const dd = res.ok
          ? el('dd', { className: `value ${res.reveal}`, textContent: res.value })
          : el('dd', { className: 'value refused', textContent: `refused: ${res.error.message}` });
        dd.dataset.field = names[i];
        dd.dataset.reveal = res.ok ? res.reveal : res.error.code;
        results.append(el('dt', { textContent: `${label}${res.ok ? ` (${res.reveal})` : ''}` }), dd);
      });
    }
    await showAudit();
  });
  const card = el('article', { className: 'order' },
    el('h3', {}, el('code', { textContent: order.id }), ` · ${money(order.total)} · ${brandName(order.card.brand)} ending ${order.card.last4}`),
    el('p', { className: 'hint', textContent: `Placed ${new Date(order.created).toLocaleString()}. Tokens: ${FIELDS.map(([n]) => order.tokens[n]).join(' ')}` }),
    form, results, customerData(order));
  card.dataset.order = order.id;
  return card;
}

/** Export and erasure of the order's customer, for a role allowed to (else nothing). */
function customerData(order) {
  const box = el('div', { className: 'customer' });
  if (!order.customer || !(permissions?.export || permissions?.erase)) return box;
  const out = el('div', { className: 'customer-result' });
  out.setAttribute('role', 'status');
  const run = async (what) => {
    const r = await withStepUp(() => api(`subjects/${order.customer}/${what}`, what === 'erase' ? {} : undefined));
    out.dataset.result = `${what} ${r.status}`;
    if (r.status !== 200) {
      out.replaceChildren(el('p', { className: 'form-error', textContent: `Refused: ${why(r)}` }));
    } else if (what === 'export') {
      const rows = r.body.values.map((v) => {
        const tr = el('tr', {}, el('td', { textContent: v.kind }), el('td', {}, el('code', { textContent: v.token })),
          el('td', { textContent: new Date(v.created_at * 1000).toLocaleString() }),
          el('td', { textContent: v.reveal }), el('td', { textContent: v.value ?? '' }));
        tr.dataset.kind = v.kind;
        return tr;
      });
      out.replaceChildren(el('table', { className: 'export' },
        el('thead', {}, el('tr', {}, ...['Kind', 'Token', 'Stored', 'Shown', 'Value'].map((h) => el('th', { textContent: h })))),
        el('tbody', {}, ...rows)));
    } else {
      out.replaceChildren(el('p', { textContent: `Customer erased: ${r.body.tokens_deleted} values deleted with their key.` }));
    }
    await showAudit();
  };
  const buttons = [];
  if (permissions.export) {
    const b = el('button', { className: 'button secondary', type: 'button', textContent: 'Export customer data' });
    b.dataset.subject = 'export';
    b.addEventListener('click', () => run('export'));
    buttons.push(b);
  }
  if (permissions.erase) {
    const b = el('button', { className: 'button secondary', type: 'button', textContent: 'Erase customer' });
    b.dataset.subject = 'erase';
    b.addEventListener('click', () => {
      if (window.confirm(`Erase every value of customer ${order.customer}? This cannot be undone.`)) run('erase');
    });
    buttons.push(b);
  }
  box.append(el('p', { className: 'hint', textContent: `Customer ${order.customer}` }), ...buttons, out);
  return box;
}

let callerRenders = 0;

/** Every API key and operator with its state and reveal lock, for roles that read the audit log or unlock callers. */
async function showCallers() {
  const section = $('callers-section');
  section.hidden = !(permissions?.audit || permissions?.unlock);
  if (section.hidden) return;
  const r = await api('locks');
  const rows = r.status !== 200
    ? [el('tr', {}, el('td', { colSpan: 5, textContent: `unavailable: ${why(r)}` }))]
    : r.body.callers.map((c) => {
      const lock = c.reveal_lock;
      const cell = el('td', {});
      if (lock && permissions.unlock) {
        const b = el('button', { className: 'button secondary small', type: 'button', textContent: 'Unlock' });
        b.addEventListener('click', async () => {
          const u = await withStepUp(() => api('unlock', { caller: c.caller }));
          await Promise.all([showCallers(), showAudit()]);
          if (u.status !== 200) {
            document.querySelector(`#callers tr[data-caller="${c.caller}"] td:last-child`)
              ?.append(el('span', { className: 'form-error', textContent: ` Refused: ${why(u)}` }));
          }
        });
        cell.append(b);
      }
      const tr = el('tr', {},
        el('td', {}, el('code', { textContent: c.caller })),
        el('td', { textContent: c.role }),
        el('td', { textContent: c.state }),
        el('td', { textContent: lock ? `locked since ${new Date(lock.since * 1000).toLocaleTimeString()}: ${lock.reason}` : 'open' }),
        cell);
      tr.dataset.caller = c.caller;
      tr.dataset.locked = String(Boolean(lock));
      return tr;
    });
  document.querySelector('#callers tbody').replaceChildren(...rows);
  section.dataset.renders = String(++callerRenders);
}

let auditRenders = 0;

async function showAudit() {
  const r = await api('audit');
  const { body } = r;
  const status_ = $('chain-status');
  status_.dataset.renders = String(++auditRenders);
  if (r.status !== 200) {
    status_.textContent = `unavailable: ${why(r)}`;
    status_.className = 'chain broken';
    delete status_.dataset.intact;
    return;
  }
  $('audit-scope').textContent = body.scope === 'all'
    ? `Every tokenization, reveal, refusal and key change in this vault (${body.total} entries; the newest ${body.entries.length} shown), hash-chained.`
    : `Your entries only (${body.total}; the newest ${body.entries.length} shown): your role may not read the whole audit log.`;
  const v = body.verification;
  status_.textContent = v.intact
    ? `chain intact: ${v.verified} entries verified`
    : `chain BROKEN at entry ${v.broken.seq}: ${v.broken.reason}`;
  status_.className = `chain ${v.intact ? 'intact' : 'broken'}`;
  status_.dataset.intact = String(v.intact);
  const rows = body.entries.slice().reverse().map((e) => {
    const tr = el('tr', {},
      el('td', { textContent: e.seq }),
      el('td', { textContent: new Date(e.at * 1000).toLocaleTimeString() }),
      el('td', { textContent: e.actor_role ? `${e.actor_role} (${e.actor.replace(/^(apikey|operator):/, '')})` : e.actor }),
      el('td', { textContent: e.action }),
      el('td', { textContent: e.kind ?? '' }),
      el('td', {}, el('code', { textContent: e.token ?? '' })),
      el('td', { textContent: e.purpose ?? '' }),
      el('td', { textContent: e.outcome }));
    tr.dataset.action = e.action;
    tr.dataset.outcome = e.outcome;
    return tr;
  });
  document.querySelector('#audit tbody').replaceChildren(...rows);
}

$('signin').addEventListener('submit', (e) => signIn(e).catch((err) => {
  $('signin-error').textContent = `Sign-in failed: ${err.message}`;
  $('signin-error').hidden = false;
}));
$('signout').addEventListener('click', signOut);
$('refresh').addEventListener('click', () => Promise.all([showOrders(), showAudit(), showCallers()]));
showSignIn();
document.body.dataset.ready = '1';
