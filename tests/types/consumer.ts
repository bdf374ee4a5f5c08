// Compiled with `tsc --noEmit` by tests/js/types.test.mjs: the declarations describe the public
// API as a TypeScript checkout would use it, and reject misuse (the @ts-expect-error lines).
import { load, protect, FieldsealError, parseEnvelope, type Sealer, type EnvelopeHeader, type Protection, type UnprotectedField } from 'fieldseal';
import { parseEnvelope as parseOnly, EnvelopeFormatError } from 'fieldseal/envelope';

export async function checkout(form: HTMLFormElement): Promise<string> {
  const sealer: Sealer = await load({ keys: '/v1/keys', poolSize: 2, context: { session: 'cs_1' } });
  const protection: Protection = sealer.protect(form, { strayPan: 'seal', messages: { required: 'Required' } });
  form.addEventListener('fieldseal:brand', (e) => void (e as CustomEvent<{ brand: string | null }>).detail.brand);
  protection.detach();
  const early: Protection = protect(form, load({ keys: '/v1/keys', pins: ['Xw8bHmsf10M-8Vw3paJ6iB8mMg6_xrsqzUvUbAhorX4'] }), { messages: { unavailable: 'Try later' } });
  // @ts-expect-error: pins are a list
  load({ keys: '/v1/keys', pins: 'Xw8bHmsf10M-8Vw3paJ6iB8mMg6_xrsqzUvUbAhorX4' });
  early.detach();
  const found: UnprotectedField[] = sealer.scan(form);
  const why: 'label' | 'value' | string = found[0]?.reason ?? 'none';
  sealer.protect(form, { warnUnprotected: true }).detach();
  // @ts-expect-error: a key-set URL is not a sealer
  protect(form, '/v1/keys');
  const envelope: string = sealer.seal('4111111111111111', { kind: 'pan' });
  const fields: Record<string, string> = sealer.sealFields({ cvc: '123', contact: { value: 'a@b.co', kind: 'email' } });
  const header: EnvelopeHeader = parseEnvelope(envelope);
  const last4: string | null = header.hints.last4;
  const f = sealer.card.format('4111', 4);
  const v = sealer.card.validatePan('4111');
  if (!v.valid) void v.code.toUpperCase();
  const c = sealer.classify('x');
  const s: 'none' | 'personal' | 'payment_card' = c.sensitivity;
  // @ts-expect-error: kind is required
  sealer.seal('x', {});
  // @ts-expect-error: not a field kind
  sealer.seal('x', { kind: 'credit-card' });
  // @ts-expect-error: not a stray-PAN mode
  sealer.protect(form, { strayPan: 'warn' });
  try {
    parseOnly('fse1.');
  } catch (e) {
    if (e instanceof EnvelopeFormatError) void e.code;
    if (e instanceof FieldsealError) void e.code;
  }
  return `${last4}${f.text}${s}${Object.keys(fields).length}${why}`;
}
