// The demo merchant's back end: it receives the checkout form, which carries envelopes in place of
// the card number, expiry, CVC, cardholder name, e-mail and phone; sends them to the vault's
// `POST /v1/tokenize` with its `checkout` API key; and keeps orders that hold tokens only (and each
// envelope's public header). The receipt shows the visitor what the merchant received: the full
// envelopes once, right after the purchase, from memory; they are never written down, since an
// envelope opens for as long as the vault holds its key, and a card security code must not outlive
// the payment in any form. Nothing here ever sees a plaintext value.
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnvelope } from 'fieldseal/envelope';
import { brandName } from '../www/js/brands.js';
import { money, priceCart } from './catalog.mjs';
import { escapeHtml, page } from './html.mjs';

/** The sealed fields of the checkout form: form name, vault kind, label. */
export const SEALED_FIELDS = [
  { name: 'card', kind: 'pan', label: 'Card number' },
  { name: 'exp', kind: 'exp', label: 'Expiry' },
  { name: 'cvc', kind: 'cvc', label: 'Security code' },
  { name: 'holder', kind: 'name', label: 'Cardholder name' },
  { name: 'email', kind: 'email', label: 'E-mail' },
  { name: 'phone', kind: 'phone', label: 'Phone' },
];

/** Orders, kept in `orders.json` in the data directory (tokens only), written atomically. */
export class Orders {
  #file;
  #orders;
  constructor(dataDir) {
    this.#file = join(dataDir, 'orders.json');
    try {
      this.#orders = JSON.parse(readFileSync(this.#file, 'utf8'));
    } catch {
      this.#orders = [];
    }
  }
  add(order) {
    this.#orders.push(order);
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#orders, null, 1), { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
  get(id) {
    return this.#orders.find((o) => o.id === id) ?? null;
  }
  list() {
    return [...this.#orders].reverse();
  }
}

/** Why a checkout was refused: HTTP status and what to tell the shopper (never a value). */
class Refusal extends Error {
  constructor(status, title, problems) {
    super(title);
    this.status = status;
    this.problems = problems;
  }
}

/** An envelope's public header, or null when `text` is not a well-formed envelope. */
function header(text) {
  try {
    return parseEnvelope(text);
  } catch {
    return null;
  }
}

/**
 * Handles `POST /checkout` (an `application/x-www-form-urlencoded` body). `sealer` is the fieldseal
 * package loaded in Node, whose stray-card-number check backs up the page's. Returns the order and
 * the posted envelopes, or throws a Refusal.
 */
export async function checkout(form, { vaultUrl, apiKey, orders, sealer, fetchImpl = fetch, sealContact = false }) {
  const cart = priceCart(form.get('cart'));
  if (!cart) throw new Refusal(400, 'Your cart is empty or no longer valid.', []);
  // The hosted-fields checkout: the card fields arrive sealed by the vault's frames; the e-mail
  // and phone, the shop's own customer data there, arrive as typed and are sealed here, in memory,
  // before anything is stored or sent on.
  if (sealContact) {
    const contact = [];
    for (const [name, kind, label] of [['email', 'email', 'E-mail'], ['phone', 'phone', 'Phone']]) {
      const values = form.getAll(name);
      const value = values.length === 1 ? values[0].trim() : '';
      if (!value || !sealer.classify(value).kinds.includes(kind)) contact.push(`${label}: enter a valid ${label.toLowerCase()}`);
      else form.set(name, sealer.seal(value, { kind, context: { origin: null } }));
    }
    if (contact.length) throw new Refusal(400, 'Some details are missing or not valid.', contact);
  }
  // Every sealed field must arrive as an envelope: a plaintext value means the page was not
  // protected, and is refused without being stored, logged or echoed.
  // Each envelope's header must also name the field's kind: a card-number envelope posted as the
  // cardholder's name, say, is refused.
  const headers = {};
  const problems = [];
  for (const f of SEALED_FIELDS) {
    const values = form.getAll(f.name);
    const h = values.length === 1 ? header(values[0]) : null;
    if (!h) problems.push(`${f.label}: not one envelope`);
    else if (h.kind !== f.kind) problems.push(`${f.label}: an envelope of kind ${h.kind}, expected ${f.kind}`);
    else headers[f.name] = { kind: h.kind, kid: h.kid, createdAt: h.createdAt, origin: h.context.origin, length: values[0].length };
  }
  if (problems.length) throw new Refusal(400, 'The payment form was not sealed, so nothing was sent on.', problems);
  const notes = (form.get('notes') ?? '').slice(0, 500);
  if (sealer.containsCardNumber(notes)) {
    throw new Refusal(400, 'The order notes hold a card number; nothing was stored.', ['Order notes: remove the card number']);
  }
  const customer = `cus_${randomBytes(8).toString('hex')}`;
  const response = await fetchImpl(`${vaultUrl}/v1/tokenize`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    // All or nothing: a refused field leaves no token of the accepted ones behind.
    // Each value belongs to the order's customer: the vault can then export or erase all of a
    // customer's data at once. The shop has no accounts, so each order is a customer of its own.
    body: JSON.stringify({ atomic: true, items: SEALED_FIELDS.map((f) => ({ envelope: form.get(f.name), subject: customer })) }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok || !Array.isArray(body?.results) || body.results.length !== SEALED_FIELDS.length) {
    throw new Refusal(502, 'The vault refused the request.', [body?.error?.message ?? `HTTP ${response.status}`]);
  }
  const failed = body.results
    .map((r, i) => (r.ok || r.error.code === 'batch_aborted' ? null : `${SEALED_FIELDS[i].label}: ${r.error.message} (${r.error.code})`))
    .filter(Boolean);
  // The batch is all or nothing: when one field is refused, the vault kept none of them (the
  // others answer batch_aborted) and the customer can correct the field and pay again.
  if (failed.length) throw new Refusal(422, 'Some details could not be accepted.', failed);
  const tokens = {};
  SEALED_FIELDS.forEach((f, i) => {
    tokens[f.name] = body.results[i].token;
  });
  const card = body.results[0];
  const order = {
    id: `ord_${randomBytes(8).toString('hex')}`,
    created: new Date().toISOString(),
    customer,
    lines: cart.lines,
    total: cart.total,
    notes,
    // What the `checkout` role gets back: the brand and last four for the receipt. No BIN and no
    // fingerprint: with both, a key able to tokenize could test candidate card numbers.
    card: { brand: card.brand, last4: card.last4 },
    tokens,
    // The envelopes' public headers: which key, kind, when, from which origin, how long.
    headers,
  };
  orders.add(order);
  return { order, envelopes: Object.fromEntries(SEALED_FIELDS.map((f) => [f.name, form.get(f.name)])) };
}

export { Refusal };

/** The receipt page; `posted` holds the envelopes the browser posted, on the first view only. */
export function receiptPage(order, posted) {
  const lines = order.lines
    .map((l) => `<tr><td>${escapeHtml(l.name)}</td><td class="num">${l.qty}</td><td class="num">${money(l.amount)}</td></tr>`)
    .join('');
  const tokens = SEALED_FIELDS
    .map((f) => `<tr><th scope="row">${f.label}</th><td><code data-token="${f.name}">${escapeHtml(order.tokens[f.name])}</code></td></tr>`)
    .join('');
  const envelopes = SEALED_FIELDS.map((f) => {
    const h = order.headers[f.name];
    const head = `kind <b>${escapeHtml(h.kind)}</b>, key <code>${escapeHtml(h.kid)}</code>, sealed ${escapeHtml(
      new Date(h.createdAt * 1000).toISOString())}, origin <code>${escapeHtml(h.origin ?? '-')}</code>, ${h.length} characters`;
    const text = posted?.[f.name];
    const body = text
      ? `<code class="envelope-text" data-envelope="${f.name}">${escapeHtml(text)}</code>`
      : '<span class="hint">not kept: the shop stores tokens, not envelopes</span>';
    return `<div class="envelope"><div class="envelope-head"><span class="field-name">${f.name}</span> ${head}</div>${body}</div>`;
  }).join('');
  return page({
    title: `Receipt ${order.id}`,
    scripts: ['/js/shop.js'],
    body: `
<section class="receipt" id="receipt" data-order="${escapeHtml(order.id)}">
  <h1>Thank you!</h1>
  <p class="lead">Order <code>${escapeHtml(order.id)}</code> is paid.</p>
  <div class="paid-with">
    <span class="brand-badge" data-brand="${escapeHtml(order.card.brand ?? '')}" id="receipt-brand">${escapeHtml(brandName(order.card.brand))}</span>
    <span>ending in <b id="receipt-last4">${escapeHtml(order.card.last4 ?? '')}</b></span>
  </div>
  <table class="lines"><thead><tr><th>Item</th><th class="num">Qty</th><th class="num">Amount</th></tr></thead>
    <tbody>${lines}</tbody>
    <tfoot><tr><th colspan="2">Total</th><td class="num" id="receipt-total">${money(order.total)}</td></tr></tfoot></table>
  ${order.notes ? `<p class="notes">Notes: ${escapeHtml(order.notes)}</p>` : ''}
  <h2>What the merchant keeps</h2>
  <p>Tokens from the vault, and the card's brand and last four. The tokens mean nothing without the vault.</p>
  <table class="tokens"><tbody>${tokens}
  </tbody></table>
  <h2>What your browser posted</h2>
  <p>Each sensitive field left the page as an envelope sealed to the vault's public key (HPKE, RFC 9180).
  Only its header is readable: which key, which kind of value, when. ${posted ? 'They are shown this once: the shop does not keep them.' : ''}</p>
  ${envelopes}
  <p><a class="button" href="/">Back to the shop</a> <a class="button secondary" href="/console">Operator console</a></p>
</section>`,
  });
}

/** The page shown when a checkout is refused. */
export function refusalPage(refusal) {
  const items = refusal.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('');
  return page({
    title: 'Payment not accepted',
    scripts: [],
    body: `<section class="refused" id="refused"><h1>Payment not accepted</h1><p>${escapeHtml(refusal.message)}</p>
<ul>${items}</ul><p><a class="button" href="/checkout">Back to checkout</a></p></section>`,
  });
}
