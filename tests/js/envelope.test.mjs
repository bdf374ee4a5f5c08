// The JS envelope header parser (js/envelope.js) against tests/vectors/envelope-v1.json: every
// valid vector parses to the vector's header members; every fail_* case whose check needs no key
// throws EnvelopeFormatError with the vector's expected error name as its code; the cases that
// only the vault can detect (authentication, unknown key, hint mismatch) parse.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EnvelopeFormatError, isEnvelope, parseEnvelope } from '../../js/envelope.js';

const doc = JSON.parse(readFileSync(new URL('../vectors/envelope-v1.json', import.meta.url), 'utf8'));
const NEEDS_KEY = new Set(['Authentication', 'UnknownKey', 'HintMismatch']);

for (const v of doc.valid) {
  test(`valid ${v.name}`, () => {
    const h = parseEnvelope(v.envelope);
    assert.equal(h.version, 1);
    assert.equal(h.kid, v.kid);
    assert.equal(h.kind, v.kind);
    assert.equal(h.createdAt, v.created_at);
    assert.equal(h.envelopeId, v.envelope_id);
    assert.equal(h.context.session, v.context?.session ?? null);
    assert.equal(h.context.origin, v.context?.origin ?? null);
    assert.equal(h.hints.brand, v.hints?.brand ?? null);
    assert.equal(h.hints.bin, v.hints?.bin ?? null);
    assert.equal(h.hints.last4, v.hints?.last4 ?? null);
    assert.ok(isEnvelope(v.envelope));
  });
}

for (const c of doc.invalid) {
  test(`invalid ${c.name} (${c.expect})`, () => {
    if (NEEDS_KEY.has(c.expect)) {
      assert.doesNotThrow(() => parseEnvelope(c.envelope), 'structurally valid: only the vault detects it');
      return;
    }
    assert.throws(() => parseEnvelope(c.envelope), (e) => {
      assert.ok(e instanceof EnvelopeFormatError);
      assert.equal(e.code, c.expect);
      return true;
    });
  });
}

test('the parser covers every structural error the vectors name', () => {
  const structural = new Set(doc.invalid.map((c) => c.expect).filter((e) => !NEEDS_KEY.has(e)));
  assert.ok(structural.size >= 12, `only ${structural.size} structural cases`);
});

test('non-canonical trailing bits are refused', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // An envelope whose base64url length leaves unused bits in the last character.
  const v = doc.valid.map((c) => c.envelope).find((e) => (e.length - 5) % 4 !== 0);
  assert.ok(v, 'a vector with unused trailing bits');
  const flipped = v.slice(0, -1) + alphabet[alphabet.indexOf(v.at(-1)) ^ 1];
  assert.throws(() => parseEnvelope(flipped), (e) => e.code === 'InvalidEncoding');
});

/** `envelope` with its brand byte (header field 12) set to `code`: no longer authentic, which only the vault sees. */
function withBrandCode(envelope, code) {
  const bin = Buffer.from(envelope.slice(5), 'base64url');
  const { kid, context } = parseEnvelope(envelope);
  bin[7 + 1 + kid.length + 1 + 8 + 16 + 1 + (context.session?.length ?? 0) + 1 + (context.origin?.length ?? 0)] = code;
  return `fse1.${bin.toString('base64url')}`;
}

test('a brand code this version does not know reads as no brand, and is still a hint', () => {
  const pan = doc.valid.find((v) => v.hints?.brand === 'visa');
  assert.equal(parseEnvelope(withBrandCode(pan.envelope, 1)).hints.brand, 'visa', 'the byte found');
  assert.equal(parseEnvelope(withBrandCode(pan.envelope, 13)).hints.brand, 'troy');
  for (const code of [14, 0xee, 0xff]) {
    const { hints } = parseEnvelope(withBrandCode(pan.envelope, code));
    assert.deepEqual(hints, { brand: null, bin: pan.hints.bin, last4: pan.hints.last4 }, String(code));
  }
  const cvc = doc.valid.find((v) => v.kind === 'cvc');
  assert.equal(parseEnvelope(cvc.envelope).hints.brand, null);
  for (const code of [1, 0xee]) {
    assert.throws(() => parseEnvelope(withBrandCode(cvc.envelope, code)), { code: 'HintsNotAllowed' }, String(code));
  }
});

test('kind and brand codes outside the tables are not read through a polluted Array.prototype', () => {
  const pan = doc.valid.find((v) => v.hints?.brand === 'visa');
  const cvc = doc.valid.find((v) => v.kind === 'cvc');
  const polluted = ['-1', '13', '20', '254'];
  for (const i of polluted) Object.defineProperty(Array.prototype, i, { value: 'visa', configurable: true });
  try {
    assert.equal(parseEnvelope(cvc.envelope).hints.brand, null, 'brand code 0');
    for (const code of [14, 21, 0xff]) {
      assert.equal(parseEnvelope(withBrandCode(pan.envelope, code)).hints.brand, null, String(code));
    }
    // The kind byte follows the version, the kid's length and the kid.
    const withKindCode = (envelope, code) => {
      const bin = Buffer.from(envelope.slice(5), 'base64url');
      bin[7 + 1 + parseEnvelope(envelope).kid.length] = code;
      return `fse1.${bin.toString('base64url')}`;
    };
    for (const code of [0, 14, 21]) {
      assert.throws(() => parseEnvelope(withKindCode(cvc.envelope, code)), { code: 'UnknownKind' }, String(code));
    }
  } finally {
    for (const i of polluted) delete Array.prototype[i];
  }
});
