#!/usr/bin/env bash
# Fuzzes the untrusted-input parsers with cargo-fuzz (libFuzzer) on nightly Rust.
#   scripts/fuzz.sh [seconds per target, default 600] [target ...]
# Targets: envelope_parse, keyset_parse. Seeds come from tests/vectors/envelope-v1.json.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(envelope_parse keyset_parse)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked

# Seed corpora from the published vectors: every envelope (text and binary) and every key set.
node - <<'JS'
const fs = require('fs');
const doc = JSON.parse(fs.readFileSync('tests/vectors/envelope-v1.json', 'utf8'));
const put = (dir, name, data) => {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${dir}/${name}`, data);
};
for (const c of [...doc.valid, ...doc.invalid]) {
  put('fuzz/corpus/envelope_parse', `${c.name}.txt`, c.envelope);
  if (c.envelope.startsWith('fse1.')) {
    put('fuzz/corpus/envelope_parse', `${c.name}.bin`, Buffer.from(c.envelope.slice(5), 'base64url'));
  }
}
const sets = doc.keys.map((k) => ({ keys: [k.jwk], server_time: 1795000000 }));
sets.push({ keys: doc.keys.map((k) => k.jwk), server_time: 1795000000 });
sets.forEach((s, i) => put('fuzz/corpus/keyset_parse', `set${i}.json`, JSON.stringify(s)));
JS

cd fuzz
mkdir -p target
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${seconds}s"
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 | tee "target/fuzz-$t.log" | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::|==|SUMMARY)' || true
  if grep -q 'SUMMARY\|panicked\|deadly signal' "target/fuzz-$t.log"; then
    echo "FAIL: $t found a crash; see fuzz/artifacts/$t" >&2
    exit 1
  fi
done
