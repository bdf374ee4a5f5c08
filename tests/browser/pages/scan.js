// The discovery test page: one protected form (with warnUnprotected), one unprotected form of
// look-alike and innocent fields; the scan's result for the tests to read (values left out).
import { load } from '/fieldseal/index.js';

const sealer = await load({ keys: '/v1/keys' });
sealer.protect(document.querySelector('#checkout'), { warnUnprotected: true });
window.found = () => sealer.scan().map(({ element, kind, reason }) => ({ id: element.id, kind, reason }));
window.sealer = sealer;
document.body.dataset.ready = '1';
