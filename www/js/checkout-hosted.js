// The hosted-fields checkout: the card number, expiry, security code and name are frames the
// vault serves from its own origin (fieldseal/hosted); this page gets their envelopes on submit
// and never the values. The contact fields are the shop's own, sealed by its back end.
import { mountFields } from '/fieldseal/hosted.js';
import { renderCart, showCount } from './cart.js';
import { failedToStart, showBrand, showFormError, showPaying } from './checkout-page.js';

const form = document.getElementById('checkout');
const pay = document.getElementById('pay');

async function main() {
  const fields = mountFields({
    vault: form.dataset.vault,
    fields: { pan: '#card', exp: '#exp', cvc: '#cvc', name: '#holder' },
    messages: '#card-errors',
    appearance: {
      fontFamily: 'system-ui', fontSize: '16px', color: '#1d2a33', borderColor: '#9aa5ad', borderRadius: '6px',
      padding: '9px 11px', focusBorderColor: '#0b6e75', focusRingColor: 'rgba(11, 110, 117, 0.25)',
      invalidColor: '#a4161a', invalidBorderColor: '#a4161a',
    },
  });
  fields.protect(form, { names: { pan: 'card', exp: 'exp', cvc: 'cvc', name: 'holder' } });
  fields.on('brand', ({ brand }) => showBrand(brand));
  fields.on('blocked', () => showFormError('Please correct the highlighted card fields.'));
  fields.on('sealed', showPaying);
  showCount();
  const total = await renderCart(pay);
  try {
    await fields.ready;
  } catch (e) {
    showFormError(`The secure card fields could not load (${e.code}). Reload the page to try again.`);
    document.body.dataset.ready = 'failed';
    return;
  }
  pay.disabled = total === 0;
  document.body.dataset.ready = '1';
}

main().catch(failedToStart);
