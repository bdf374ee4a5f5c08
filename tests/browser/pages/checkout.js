// The checkout test page: protects the form with the stray-PAN mode from ?stray=, records every
// fieldseal event and CSP violation for the tests to read.
import { load } from '/fieldseal/index.js';

const violations = [];
document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
const events = [];
const params = new URLSearchParams(location.search);
const sealer = await load({ keys: '/v1/keys', context: { session: 'cs_test_1' } });
const form = document.querySelector('#checkout');
for (const type of ['brand', 'invalid', 'valid', 'sealed', 'blocked', 'error']) {
  form.addEventListener(`fieldseal:${type}`, (e) => events.push({ type, target: e.target.id, detail: { ...e.detail } }));
}
const protection = sealer.protect(form, { strayPan: params.get('stray') ?? 'block' });
Object.assign(window, { sealer, protection, events, violations });
document.body.dataset.ready = '1';
