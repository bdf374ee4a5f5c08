#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh machine: it installs what it needs first.
#   1. formatting and lints (rustfmt, clippy with -D warnings, all targets and features);
#   2. cargo test --workspace: unit tests, the RFC 9180 / Wycheproof / envelope v1 vector suites
#      (../shared/vectors is required when CI is set), doc tests, the vault on SQLite and on the
#      local PostgreSQL (started here if it is down; FIELDSEAL_TEST_POSTGRES names another);
#      then every test docs/compliance.md names is checked to exist;
#   3. schemathesis against the real vault binary's served OpenAPI document, with each built-in
#      role's API key and with none (scripts/api-fuzz.sh), zero failures;
#   4. the browser build: wasm32 release build, checked to hold no recipient-side code;
#   5. the wasm bindings' tests (wasm-bindgen-test) in Node and in headless Chromium;
#   6. the npm package: `npm run build`, then the JS tests in Node (envelope header parser against
#      the vectors, import without a DOM, sealer, size and SRI) and the browser tests
#      (playwright-core driving Debian's Chromium against the built package on 127.0.0.1);
#   7. the demo storefront end to end: the real vault binary, the demo server, Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "PostgreSQL for the vault's PostgreSQL backend tests"
scripts/postgres.sh

step "cargo test --workspace"
cargo test --workspace

step "docs/compliance.md names only tests that exist"
scripts/compliance.sh --check

step "OpenAPI document against the running vault: schemathesis, each role's key and none"
scripts/api-fuzz.sh

step "browser wasm: build and seal-only check"
scripts/check-wasm-seal-only.sh

step "wasm bindings: wasm-bindgen-test in Node"
cargo test --target wasm32-unknown-unknown --test bindings

step "wasm bindings: wasm-bindgen-test in headless Chromium"
WASM_BINDGEN_USE_BROWSER=1 cargo test --target wasm32-unknown-unknown --test bindings

step "npm package: build"
npm run build

step "npm package: JS tests in Node"
node --test tests/js/

step "npm package: browser tests in Chromium"
node --test --test-concurrency=1 tests/browser/

step "demo storefront: end to end in Chromium"
node --test --test-concurrency=1 tests/e2e/

step "all tests passed"
