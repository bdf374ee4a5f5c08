// A checkout page built by Vite from the installed package: `import ... from 'fieldseal'`.
import { load } from 'fieldseal';

const sealer = await load({ keys: '/v1/keys' });
sealer.protect(document.querySelector('#checkout'));
document.body.dataset.ready = '1';
