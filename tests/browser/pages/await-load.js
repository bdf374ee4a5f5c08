// The pattern protect(form, load(...)) replaces: the form is protected only once the key set has
// loaded, so a submit before that posts the plaintext. A control for the browser tests.
import { load } from '/fieldseal/index.js';

const sealer = await load({ keys: '/v1/keys-slow' });
sealer.protect(document.querySelector('#checkout'));
document.body.dataset.ready = '1';
