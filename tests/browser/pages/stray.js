// The stray-data test page: card fields known only by name or id, expiry <select>s, a card number
// split over four inputs, free text; the stray-PAN mode from ?stray=.
import { load, protect } from '/fieldseal/index.js';

const events = [];
const form = document.querySelector('#checkout');
for (const type of ['sealed', 'blocked', 'error']) {
  form.addEventListener(`fieldseal:${type}`, (e) => events.push({ type, target: e.target.id, detail: { ...e.detail } }));
}
const loading = load({ keys: '/v1/keys' });
const stray = new URLSearchParams(location.search).get('stray');
const protection = protect(form, loading, stray ? { strayPan: stray } : {});
Object.assign(window, { protection, events });
window.sealer = await loading;
document.body.dataset.ready = '1';
