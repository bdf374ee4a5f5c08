// What both checkouts (in-page and hosted fields) show around the card fields: the brand badge,
// the form's error line, the Pay button while paying, and a page that could not start.
import { brandName } from './brands.js';

const formError = () => document.getElementById('form-error');

export function showBrand(brand) {
  const badge = document.getElementById('brand');
  badge.textContent = brand ? brandName(brand) : '';
  badge.dataset.brand = brand ?? '';
}

export function showFormError(text) {
  formError().textContent = text;
  formError().hidden = false;
}

export function showPaying() {
  const pay = document.getElementById('pay');
  formError().hidden = true;
  pay.disabled = true;
  pay.textContent = 'Paying …';
}

export function failedToStart(e) {
  showFormError(`The payment form could not start (${e.code ?? e.message}). Reload the page to try again.`);
  document.getElementById('pay').disabled = true;
}
