// The demo merchant's back end: it receives the checkout form, which carries envelopes in place of
// the card number, expiry, CVC, cardholder name, e-mail and phone; sends them to the vault's
// `POST /v1/tokenize` with its `checkout` API key; and keeps orders that hold tokens only. The
// receipt shows the visitor what the merchant received. Nothing here ever sees a plaintext value.
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

/**
 * A server-side backstop to the page's stray-PAN guard: whether `text` holds a run of 13 to 19
 * digits (spaces or dashes between them allowed) that passes the Luhn check.
 */
export function holdsCardNumber(text) {
  for (const run of text.match(/\d(?:[ -]?\d){12,}/g) ?? []) {
    const digits = run.replace(/\D/g, '');
    for (let len = 13; len <= 19; len++) {
      for (let start = 0; start + len <= digits.length; start++) {
        if (luhn(digits.slice(start, start + len))) return true;
      }
    }
  }
  return false;
}

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

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

/**
 * Handles `POST /checkout` (an `application/x-www-form-urlencoded` body). Returns the order, or
 * throws a Refusal.
 */
export async function checkout(form, { vaultUrl, apiKey, orders, fetchImpl = fetch }) {
  const cart = priceCart(form.get('cart'));
  if (!cart) throw new Refusal(400, 'Your cart is empty or no longer valid.', []);
  // Every sealed field must arrive as an envelope: a plaintext value means the page was not
  // protected, and is refused without being stored, logged or echoed.
  const missing = SEALED_FIELDS.filter((f) => !(form.get(f.name) ?? '').startsWith('fse1.'));
  if (missing.length) {
    throw new Refusal(400, 'The payment form was not sealed, so nothing was sent on.',
      missing.map((f) => `${f.label}: not an envelope`));
  }
  const notes = (form.get('notes') ?? '').slice(0, 500);
  if (holdsCardNumber(notes)) {
    throw new Refusal(400, 'The order notes hold a card number; nothing was stored.', ['Order notes: remove the card number']);
  }
  const response = await fetchImpl(`${vaultUrl}/v1/tokenize`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ items: SEALED_FIELDS.map((f) => ({ envelope: form.get(f.name) })) }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok || !Array.isArray(body?.results)) {
    throw new Refusal(502, 'The vault refused the request.', [body?.error?.message ?? `HTTP ${response.status}`]);
  }
  const failed = body.results
    .map((r, i) => (r.ok ? null : `${SEALED_FIELDS[i].label}: ${r.error.message} (${r.error.code})`))
    .filter(Boolean);
  if (failed.length) throw new Refusal(422, 'Some details could not be accepted.', failed);
  const tokens = {};
  SEALED_FIELDS.forEach((f, i) => {
    tokens[f.name] = body.results[i].token;
  });
  const card = body.results[0];
  const order = {
    id: `ord_${randomBytes(8).toString('hex')}`,
    created: new Date().toISOString(),
    lines: cart.lines,
    total: cart.total,
    notes,
    card: { brand: card.brand, last4: card.last4, bin: card.bin, fingerprint: card.fingerprint },
    tokens,
    // What the page posted for the sealed fields, shown on the receipt. Envelopes open only with
    // the vault's private key, and each can be tokenized once.
    envelopes: Object.fromEntries(SEALED_FIELDS.map((f) => [f.name, form.get(f.name)])),
  };
  orders.add(order);
  return order;
}

export { Refusal };

/** The receipt page. */
export function receiptPage(order) {
  const lines = order.lines
    .map((l) => `<tr><td>${escapeHtml(l.name)}</td><td class="num">${l.qty}</td><td class="num">${money(l.amount)}</td></tr>`)
    .join('');
  const tokens = SEALED_FIELDS
    .map((f) => `<tr><th scope="row">${f.label}</th><td><code data-token="${f.name}">${escapeHtml(order.tokens[f.name])}</code></td></tr>`)
    .join('');
  const envelopes = SEALED_FIELDS.map((f) => {
    const text = order.envelopes[f.name];
    let header = '';
    try {
      const h = parseEnvelope(text);
      header = `kind <b>${escapeHtml(h.kind)}</b>, key <code>${escapeHtml(h.kid)}</code>, sealed ${escapeHtml(
        new Date(h.createdAt * 1000).toISOString())}, origin <code>${escapeHtml(h.context.origin ?? '-')}</code>`;
    } catch (e) {
      header = `unreadable header: ${escapeHtml(e.message)}`;
    }
    return `<div class="envelope"><div class="envelope-head"><span class="field-name">${f.name}</span> ${header}</div>`
      + `<code class="envelope-text" data-envelope="${f.name}">${escapeHtml(text)}</code></div>`;
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
  <p>Tokens from the vault, and the card's keyed fingerprint. These mean nothing without the vault.</p>
  <table class="tokens"><tbody>${tokens}
    <tr><th scope="row">Card fingerprint</th><td><code id="receipt-fingerprint">${escapeHtml(order.card.fingerprint ?? '')}</code></td></tr>
  </tbody></table>
  <h2>What your browser posted</h2>
  <p>Each sensitive field left the page as an envelope sealed to the vault's public key (HPKE, RFC 9180).
  Only its header is readable: which key, which kind of value, when.</p>
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
