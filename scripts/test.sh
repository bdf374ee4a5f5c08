#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh machine: it installs what it needs first.
#   1. formatting and lints (rustfmt, clippy with -D warnings, all targets and features);
#   2. cargo test --workspace: unit tests, the RFC 9180 / Wycheproof / envelope v1 vector suites
#      (../shared/vectors is required when CI is set), doc tests;
#   3. the browser build: wasm32 release build, checked to hold no recipient-side code.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "browser wasm: build and seal-only check"
scripts/check-wasm-seal-only.sh

step "all tests passed"
