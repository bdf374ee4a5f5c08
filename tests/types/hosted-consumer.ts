// Compiled with `tsc --noEmit` by tests/js/types.test.mjs: fieldseal/hosted as a checkout would
// use it, through the package's exports map; misuse is rejected.
import { FieldsealError, mountFields, type HostedFields } from 'fieldseal/hosted';

export async function checkout(form: HTMLFormElement): Promise<string> {
  const fields: HostedFields = mountFields({
    vault: 'https://vault.example',
    fields: { pan: '#card-number', exp: document.createElement('div'), cvc: '#card-cvc', name: '#card-name' },
    messages: '#card-errors',
    appearance: { fontFamily: 'system-ui', fontSize: '16px', color: '#1d2a33', padding: '10px 12px' },
    context: { session: 'cs_1' },
  });
  const off = fields.on('brand', ({ brand }) => console.log(brand));
  fields.on('invalid', ({ field, code }) => console.log(field, code));
  off();
  fields.protect(form, { names: { pan: 'card' } }).detach();
  await fields.ready;
  try {
    const { pan, exp, cvc, name } = await fields.seal();
    return `${pan}${exp}${cvc}${name ?? ''}`;
  } catch (e) {
    if (e instanceof FieldsealError) return e.fields?.pan?.code ?? e.code;
    throw e;
  }
}

// @ts-expect-error: the card number's container is required
mountFields({ vault: 'https://vault.example', fields: { exp: '#e', cvc: '#c' } });
// @ts-expect-error: not a field
mountFields({ vault: 'https://vault.example', fields: { pan: '#p', exp: '#e', cvc: '#c' }, labels: { zip: 'ZIP' } });
// @ts-expect-error: not an event
mountFields({ vault: 'https://vault.example', fields: { pan: '#p', exp: '#e', cvc: '#c' } }).on('keydown', () => {});
