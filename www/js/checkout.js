// The checkout page, integrated as the fieldseal README shows: the form is protected at once,
// while the vault's key set loads (a Pay pressed meanwhile waits for it). Around that: the order summary, the brand badge, and a message when a submit is blocked.
import { load, protect } from '/fieldseal/index.js';
import { brandName } from './brands.js';
import { encodeCart, money, products, readCart, showCount, writeCart } from './cart.js';

const form = document.getElementById('checkout');
const pay = document.getElementById('pay');
const formError = document.getElementById('form-error');

async function renderCart() {
  const cart = readCart();
  const catalog = await products();
  const body = document.querySelector('#cart-lines tbody');
  body.replaceChildren();
  let total = 0;
  for (const p of catalog) {
    const qty = cart[p.sku];
    if (!qty) continue;
    total += qty * p.price;
    const row = body.insertRow();
    row.dataset.sku = p.sku;
    row.insertCell().textContent = `${p.name} × ${qty}`;
    const amount = row.insertCell();
    amount.className = 'num';
    amount.textContent = money(qty * p.price);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = 'remove';
    remove.setAttribute('aria-label', `Remove ${p.name}`);
    remove.addEventListener('click', () => {
      delete cart[p.sku];
      writeCart(cart);
      renderCart();
    });
    row.insertCell().append(remove);
  }
  document.getElementById('cart-total').textContent = money(total);
  document.getElementById('cart-empty').hidden = total > 0;
  document.getElementById('cart-field').value = encodeCart(cart);
  pay.textContent = total ? `Pay ${money(total)}` : 'Pay';
  return total;
}

async function main() {
  const loading = load({ keys: '/v1/keys' });
  protect(form, loading);
  showCount();
  const total = await renderCart();
  await loading;

  const badge = document.getElementById('brand');
  form.addEventListener('fieldseal:brand', (e) => {
    badge.textContent = e.detail.brand ? brandName(e.detail.brand) : '';
    badge.dataset.brand = e.detail.brand ?? '';
  });
  form.addEventListener('fieldseal:blocked', (e) => {
    formError.textContent = e.detail.reason === 'stray_card_number'
      ? 'A card number was typed outside the card number field. Remove it to continue.'
      : 'Please correct the highlighted fields.';
    formError.hidden = false;
  });
  form.addEventListener('fieldseal:error', () => {
    formError.textContent = 'Your details could not be sealed, so nothing was sent. Reload the page and try again.';
    formError.hidden = false;
  });
  form.addEventListener('fieldseal:sealed', () => {
    formError.hidden = true;
    pay.disabled = true;
    pay.textContent = 'Paying …';
  });
  pay.disabled = total === 0;
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  formError.textContent = `The payment form could not start (${e.code ?? e.message}). Reload the page to try again.`;
  formError.hidden = false;
  pay.disabled = true;
});
