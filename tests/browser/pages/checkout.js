// The checkout test page: protects the form with the stray-PAN mode from ?stray=, from the start
// (the key set from ?keys=, default /v1/keys, pinned to the thumbprints in ?pins=, still loading), records every fieldseal event and
// CSP violation for the tests to read.
import { load, protect } from '/fieldseal/index.js';

const violations = [];
document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
const events = [];
const params = new URLSearchParams(location.search);
const form = document.querySelector('#checkout');
for (const type of ['brand', 'invalid', 'valid', 'sealed', 'blocked', 'error']) {
  form.addEventListener(`fieldseal:${type}`, (e) => events.push({ type, target: e.target.id, detail: { ...e.detail } }));
}
const loading = load({ keys: params.get('keys') ?? '/v1/keys', pins: params.get('pins')?.split(','), context: { session: 'cs_test_1' } });
if (params.has('late')) {
  // A control for the tests: the pattern protect(form, load(...)) replaces. The form is protected
  // only once the key set has loaded, so a submit before that posts the plaintext.
  window.sealer = await loading;
  window.protection = window.sealer.protect(form);
} else {
  const protection = protect(form, loading, { strayPan: params.get('stray') ?? 'block' });
  Object.assign(window, { protection, events, violations });
  document.body.dataset.protected = '1';
  window.sealer = await loading.catch(() => null);
}
document.body.dataset.ready = window.sealer ? '1' : 'failed';
