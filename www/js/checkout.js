// The checkout page, integrated as the fieldseal README shows: the form is protected at once,
// while the vault's key set loads (a Pay pressed meanwhile waits for it). Around that: the order summary, the brand badge, and a message when a submit is blocked.
import { load, protect } from '/fieldseal/index.js';
import { renderCart, showCount } from './cart.js';
import { failedToStart, showBrand, showFormError, showPaying } from './checkout-page.js';

const form = document.getElementById('checkout');
const pay = document.getElementById('pay');

async function main() {
  const loading = load({ keys: '/v1/keys' });
  protect(form, loading);
  showCount();
  const total = await renderCart(pay);
  await loading;

  form.addEventListener('fieldseal:brand', (e) => showBrand(e.detail.brand));
  form.addEventListener('fieldseal:blocked', (e) => showFormError(e.detail.reason === 'stray_card_number'
    ? 'A card number was typed outside the card number field. Remove it to continue.'
    : 'Please correct the highlighted fields.'));
  form.addEventListener('fieldseal:error', () => showFormError('Your details could not be sealed, so nothing was sent. Reload the page and try again.'));
  form.addEventListener('fieldseal:sealed', showPaying);
  pay.disabled = total === 0;
  document.body.dataset.ready = '1';
}

main().catch(failedToStart);
