// The hosted fields test page: the vault's URL and the appearance come in the query, and every
// event the loader dispatches is recorded in window.events.
import { mountFields } from '/fieldseal/hosted.js';

const q = new URLSearchParams(location.search);
window.events = [];
try {
  const fields = mountFields({
    vault: q.get('vault'),
    messages: '#card-errors',
    fields: { pan: '#card-number', exp: '#card-exp', cvc: '#card-cvc' },
    appearance: q.has('appearance') ? JSON.parse(q.get('appearance')) : undefined,
    timeout: Number(q.get('timeout') ?? 15000),
    context: { session: 'cs_test_1' },
  });
  window.fields = fields;
  for (const t of ['ready', 'change', 'brand', 'focus', 'blur', 'invalid', 'valid', 'error', 'sealed', 'blocked']) {
    fields.on(t, (d) => window.events.push({ type: t, ...d }));
  }
  if (!q.has('noprotect')) fields.protect(document.querySelector('form'), { names: { pan: 'card', exp: 'exp', cvc: 'cvc' } });
  fields.ready.then(() => document.body.setAttribute('data-ready', '1'), () => document.body.setAttribute('data-ready', 'failed'));
} catch (e) {
  window.mountError = { code: e.code, message: e.message };
  document.body.setAttribute('data-ready', 'threw');
}
