#!/usr/bin/env bash
# Every benchmark, each next to a reference measured in the same run on the same machine, in well
# under 10 minutes once built. Writes bench-results/{native,browser,vault,results}.json and prints
# the tables that BENCHMARKS.md records.
#   1. native (criterion): seal, prepare and open per ECDH backend, next to raw ECDH;
#   2. Chromium: seal per field (prepared, empty pool) next to WebCrypto and @hpke/core in the same
#      page, a whole checkout form, load() split, and the size of everything a page downloads;
#   3. the vault over HTTP on 127.0.0.1: tokenize (batches of 1, 6 and 100) and detokenize at rising
#      concurrency, next to the raw ECDH rate on the same cores, on SQLite (over plain HTTP, then
#      over TLS on the same vault, in one run), on the machine's
#      PostgreSQL with one node, and with two nodes on one database (started here if it is down;
#      FIELDSEAL_BENCH_POSTGRES names another server); SQLite again with the KEK in a SoftHSM2
#      token instead of a key file (unwrapping happens at start: the rates should match).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-results
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*"; }

step "setup and builds"
scripts/setup.sh
cargo build --release -p fieldseal-vault -p fieldseal-bench
npm run build

step "native: cargo bench -p fieldseal-core --bench seal_open"
cargo bench -p fieldseal-core --bench seal_open -- --warm-up-time 1 --measurement-time 3
node scripts/bench-native.mjs "$out/native.json"

step "browser: Chromium"
node benches/browser/run.mjs 300 "$out/browser.json"

step "browser: hosted fields (the vault serving the frames, Chromium)"
node benches/browser/hosted.mjs 15 "$out/hosted.json"

step "vault: fieldseal-loadgen over HTTP, SQLite, plain HTTP then TLS"
target/release/fieldseal-loadgen --tls --out "$out/vault.json"
step "vault: fieldseal-loadgen over HTTP, SQLite, the KEK in a PKCS#11 token (SoftHSM2)"
target/release/fieldseal-loadgen --kek pkcs11 --out "$out/vault-pkcs11.json"

pg="${FIELDSEAL_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
if [[ -z "${FIELDSEAL_BENCH_POSTGRES:-}" ]]; then scripts/postgres.sh; fi
step "vault: fieldseal-loadgen over HTTP, PostgreSQL, one node"
target/release/fieldseal-loadgen --database postgres --postgres-url "$pg" --out "$out/vault-postgres.json"
step "vault: fieldseal-loadgen over HTTP, PostgreSQL, two nodes on one database"
target/release/fieldseal-loadgen --database postgres --postgres-url "$pg" --nodes 2 \
    --out "$out/vault-postgres-2.json"

step "summary"
node scripts/bench-summary.mjs "$out"
