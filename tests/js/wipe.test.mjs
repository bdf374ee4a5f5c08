// Plaintext copies in the wasm's memory: after each of the package's helpers and after sealing,
// the card number and the e-mail are nowhere in the wasm's linear memory (freed blocks are zeroed
// by the allocator, the stack below a seal is overwritten). Scans the memory of the built wasm
// (dist/) while driving it through the package's own API.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { initSync } from '../../dist/wasm/fieldseal.js';
import { load } from '../../dist/index.js';

const wasm = readFileSync(new URL('../../dist/wasm/fieldseal_bg.wasm', import.meta.url));
const vectors = JSON.parse(readFileSync(new URL('../vectors/envelope-v1.json', import.meta.url), 'utf8'));
const keys = { keys: [vectors.keys[0].jwk], server_time: Math.floor(Date.now() / 1000) };

const PAN = '4111111111111111';
// A CVC is too short to search for: three digits occur by chance in a megabyte of memory.
const SECRETS = [PAN, '4111 1111 1111 1111', 'jane.doe@example.com'];

test('no plaintext is left in wasm memory after formatting, validating, classifying or sealing', async () => {
  // The glue module is a singleton: initSync hands back the exports (memory included) of the
  // instance the package's load() made.
  const sealer = await load({ keys, wasm, poolSize: 2 });
  const { memory } = initSync({ module: wasm });
  const card = sealer.card;
  const steps = {
    'card.format while typing': () => {
      for (let typed = 1; typed <= PAN.length; typed++) card.format(PAN.slice(0, typed), typed);
    },
    'card.brand': () => card.brand(PAN),
    'card.validatePan': () => card.validatePan('4111 1111 1111 1111'),
    classify: () => {
      sealer.classify(PAN);
      sealer.classify('jane.doe@example.com');
    },
    containsCardNumber: () => sealer.containsCardNumber(`notes ${PAN} thanks`),
    'seal, prepared context': () => {
      sealer.seal(PAN, { kind: 'pan' });
      sealer.seal('jane.doe@example.com', { kind: 'email' });
    },
    'seal, empty pool': () => {
      for (let i = 0; i < 3; i++) sealer.seal('4111 1111 1111 1111', { kind: 'pan' });
    },
  };
  // Checked after each step: a later call could reuse (and so overwrite) a freed block by chance.
  for (const [step, run] of Object.entries(steps)) {
    run();
    const bytes = Buffer.from(memory.buffer);
    const left = SECRETS.filter((s) => bytes.includes(Buffer.from(s)));
    assert.deepEqual(left, [], `plaintext in wasm memory after ${step}`);
  }
});
