// Reads the public, authenticated header of an envelope v1 (docs/envelope-v1.md) without the wasm:
// for showing "Visa ending 1111" next to a sealed field, or for checking in a back end what a form
// posted before sending it to the vault. It performs every structural check of the spec's section
// 5 steps 1-2 (prefix, length, strict base64url, each header member, the point `enc` on P-256, the
// ciphertext length, no trailing bytes) and throws an EnvelopeFormatError whose `code` names the
// failed check, as fieldseal-core's ParseError does. What needs the vault's private key
// (authentication, unknown key, hint mismatch) is not checked here: a header read here is
// unauthenticated until the vault opens the envelope.

const PREFIX = 'fse1.';
const MAX_TEXT_LEN = 2144;
const KINDS = ['pan', 'cvc', 'exp', 'name', 'email', 'phone', 'address', 'postal-code', 'birth-date',
  'national-id', 'iban', 'text'];
const BRANDS = ['visa', 'mastercard', 'amex', 'discover', 'diners', 'jcb', 'unionpay', 'maestro', 'rupay', 'mir',
  'elo', 'verve', 'troy'];
// The entry for a 1-based code, or undefined: never an index outside the table, which would be
// read through Array.prototype.
const entry = (table, code) => (code >= 1 && code <= table.length ? table[code - 1] : undefined);
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** An envelope that is not well-formed; `code` is the name of the failed check. */
export class EnvelopeFormatError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'EnvelopeFormatError';
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new EnvelopeFormatError(code, message);
};

/** Strict unpadded base64url (RFC 4648 §5): canonical, no padding or whitespace. */
function base64url(text) {
  if (text.length % 4 === 1) fail('InvalidEncoding', 'envelope is not canonical base64url');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const v = B64.indexOf(text[i]);
    if (v < 0) fail('InvalidEncoding', 'envelope is not canonical base64url');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  // Unused trailing bits must be zero.
  if (acc & ((1 << bits) - 1)) fail('InvalidEncoding', 'envelope is not canonical base64url');
  return out;
}

// P-256 (SEC 2): y^2 = x^3 - 3x + b mod p.
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
const big = (bytes) => bytes.reduce((a, b) => (a << 8n) | BigInt(b), 0n);

function onCurve(point) {
  if (point[0] !== 0x04) return false;
  const x = big(point.subarray(1, 33));
  const y = big(point.subarray(33, 65));
  if (x >= P || y >= P) return false;
  return (y * y - (x * x * x - 3n * x + B)) % P === 0n;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const ascii = (bytes) => String.fromCharCode(...bytes);

/**
 * Parses an envelope's text form and returns its header: `{ version, kid, kind, createdAt,
 * envelopeId, context: { session, origin }, hints: { brand, bin, last4 } }` (absent members are
 * `null`). Throws EnvelopeFormatError with the spec's check name as `code`.
 */
export function parseEnvelope(text) {
  if (typeof text !== 'string') fail('MissingPrefix', 'not an envelope: missing the fse1. prefix');
  if (text.length > MAX_TEXT_LEN) fail('TooLong', 'envelope is too long');
  if (!text.startsWith(PREFIX)) fail('MissingPrefix', 'not an envelope: missing the fse1. prefix');
  const b = base64url(text.slice(PREFIX.length));
  let i = 0;
  const take = (n) => {
    if (i + n > b.length) fail('Truncated', 'envelope is truncated');
    const s = b.subarray(i, i + n);
    i += n;
    return s;
  };
  const u8 = () => take(1)[0];
  const u16 = () => {
    const s = take(2);
    return (s[0] << 8) | s[1];
  };
  const short = () => {
    const n = u8();
    return n === 0 ? null : take(n);
  };

  const version = u8();
  if (version !== 1) fail('UnsupportedVersion', 'unsupported envelope version');
  const kem = u16();
  const kdf = u16();
  const aead = u16();
  if (kem !== 0x10 || kdf !== 1 || aead !== 2) fail('UnsupportedSuite', 'unsupported HPKE suite');
  const kidLen = u8();
  if (kidLen < 1 || kidLen > 64) fail('InvalidKeyId', 'invalid key id');
  const kid = ascii(take(kidLen));
  if (!/^[A-Za-z0-9._-]+$/.test(kid)) fail('InvalidKeyId', 'invalid key id');
  const kindCode = u8();
  const kind = entry(KINDS, kindCode);
  if (!kind) fail('UnknownKind', 'unknown field kind');
  const createdAt = Number(big(take(8)));
  const envelopeId = hex(take(16));
  const text8 = (bytes, max) => {
    if (bytes === null) return null;
    if (bytes.length > max || !bytes.every((c) => c >= 0x21 && c <= 0x7e)) fail('InvalidContext', 'invalid context');
    return ascii(bytes);
  };
  const session = text8(short(), 128);
  const origin = text8(short(), 255);
  // A brand code this version does not know (added to the table later) reads as no brand.
  const brandCode = u8();
  const brand = entry(BRANDS, brandCode) ?? null;
  const digits = (bytes, lens) => {
    if (bytes === null) return null;
    if (!lens.includes(bytes.length) || !bytes.every((c) => c >= 0x30 && c <= 0x39)) fail('InvalidHints', 'invalid hints');
    return ascii(bytes);
  };
  const bin = digits(short(), [6, 8]);
  const last4 = digits(short(), [4]);
  if (kind !== 'pan' && (brandCode || bin || last4)) fail('HintsNotAllowed', 'hints on a kind other than pan');
  if (!onCurve(take(65))) fail('InvalidPoint', 'encapsulated key is not a P-256 point');
  const ctLen = u16();
  if (ctLen < 17 || ctLen > 1040) fail('InvalidCiphertextLength', 'invalid ciphertext length');
  take(ctLen);
  if (i !== b.length) fail('TrailingBytes', 'envelope has trailing bytes');
  return { version, kid, kind, createdAt, envelopeId, context: { session, origin }, hints: { brand, bin, last4 } };
}

/** Whether `text` looks like an envelope (the prefix); use parseEnvelope to check it. */
export const isEnvelope = (text) => typeof text === 'string' && text.startsWith(PREFIX);
