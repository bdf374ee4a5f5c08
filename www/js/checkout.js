// The checkout page, integrated as the fieldseal README shows: the form is protected at once,
// while the vault's key set loads (a Pay pressed meanwhile waits for it). Around that: the order summary, the brand badge, and a message when a submit is blocked.
import { load, protect } from '/fieldseal/index.js';
import { brandName } from './brands.js';
import { renderCart, showCount } from './cart.js';

const form = document.getElementById('checkout');
const pay = document.getElementById('pay');
const formError = document.getElementById('form-error');

async function main() {
  const loading = load({ keys: '/v1/keys' });
  protect(form, loading);
  showCount();
  const total = await renderCart(pay);
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
