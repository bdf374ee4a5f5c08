#!/usr/bin/env bash
# Proves the browser build cannot open envelopes, two ways:
#  1. cargo's feature resolution for the wasm build of `fieldseal` does not enable fieldseal-core's
#     `open` (or `aws-lc`, or `test-vectors`) feature, so the recipient side is not even compiled;
#  2. the release wasm's function names (its "name" section) include the sealing side and nothing
#     of the opening side (decapsulation, recipient setup, Opener, AEAD decryption).
set -euo pipefail
cd "$(dirname "$0")/.."

target=wasm32-unknown-unknown
features=$(cargo tree -p fieldseal --target "$target" -e features -i fieldseal-core)
if grep -Eq 'fieldseal-core feature "(open|aws-lc|test-vectors|aes128)"' <<<"$features"; then
  echo "FAIL: the wasm build enables a recipient-side feature of fieldseal-core:" >&2
  echo "$features" >&2
  exit 1
fi

# Built as the npm package builds it (without `std`), in the release profile, which keeps names.
cargo build -p fieldseal --target "$target" --release --no-default-features
wasm=target/$target/release/fieldseal.wasm
names=$(node scripts/wasm-function-names.mjs "$wasm")
count=$(wc -l <<<"$names")

# Control: the names are there and the sealing side is found, so a miss below means absence.
for want in 'fieldseal_core4hpke12key_schedule' 'fieldseal8Prepared11seal_native' 'fieldseal_core4ecdh9PublicKey9from_sec1'; do
  if ! grep -q "$want" <<<"$names"; then
    echo "FAIL: expected sealing-side function $want not found among $count names" >&2
    exit 1
  fi
done
if found=$(grep -Ei 'decap|setup_base_recipient|Opener|opening|OpenError|decrypt|aead_open' <<<"$names"); then
  echo "FAIL: recipient-side code in the browser wasm:" >&2
  echo "$found" >&2
  exit 1
fi
echo "wasm seal-only check: ok ($wasm, $(wc -c <"$wasm") bytes, $count functions, no recipient-side code, open feature not enabled)"
