// Times mountFields() to the moment the card number frame says `ready` (its input can be typed
// into: the frame page, its JS and CSS, the wasm and the key set loaded) and to every frame ready.
import { mountFields } from '/fieldseal/hosted.js';

const vault = new URLSearchParams(location.search).get('vault');
const t0 = performance.now();
const fields = mountFields({ vault, fields: { pan: '#card-number', exp: '#card-exp', cvc: '#card-cvc' } });
let pan = null;
fields.on('change', () => {});
fields.ready.then(() => {
  window.result = { pan: pan ?? performance.now() - t0, all: performance.now() - t0 };
}, (e) => {
  window.result = { error: e.code };
});
// The number frame's own `ready`: its first state message comes right after it.
fields.addEventListener('change', function first(e) {
  if (e.detail.field === 'pan' && pan === null) pan = performance.now() - t0;
});
