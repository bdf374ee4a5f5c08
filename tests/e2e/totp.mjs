// TOTP codes (RFC 6238, HMAC-SHA1 as the vault's `otpauth://` URIs state) computed from an
// enrolment URI, as an authenticator app does, for tests that sign operators in.
import { createHmac } from 'node:crypto';

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The parameters of an `otpauth://totp/...` URI: { secret, digits, period }. */
export function parseOtpauth(uri) {
  const u = new URL(uri);
  if (u.protocol !== 'otpauth:' || u.host !== 'totp') throw new Error('not an otpauth://totp/ URI');
  const algorithm = u.searchParams.get('algorithm') ?? 'SHA1';
  if (algorithm !== 'SHA1') throw new Error(`unsupported algorithm ${algorithm}`);
  return {
    secret: base32(u.searchParams.get('secret') ?? ''),
    digits: Number(u.searchParams.get('digits') ?? 6),
    period: Number(u.searchParams.get('period') ?? 30),
  };
}

/** The code of time step `step` (RFC 4226 HOTP with the step as counter). */
export function codeAtStep({ secret, digits }, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(n % 10 ** digits).padStart(digits, '0');
}

/**
 * A code source for one operator: each call gives a code the vault has not seen yet. The vault
 * takes each time step's code once and accepts the step either side of its own (clock drift), so
 * a second code within one step is the next step's; past that, it waits for the clock.
 */
export function codes(uri) {
  const params = parseOtpauth(uri);
  let last = -1;
  return async function next() {
    const now = () => Math.floor(Date.now() / 1000 / params.period);
    const step = Math.max(now(), last + 1);
    while (step > now() + 1) await new Promise((r) => setTimeout(r, 250));
    last = step;
    return codeAtStep(params, step);
  };
}
