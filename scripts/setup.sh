#!/usr/bin/env bash
# Installs what building and testing fieldseal needs on a fresh machine, and nothing that is
# already there: the pinned Rust toolchain's components and the wasm32 target (rust-toolchain.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "setup: installing Rust $toolchain"
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi
installed=$(rustup component list --toolchain "$toolchain" --installed)
for component in rustfmt clippy; do
  if ! grep -q "^$component" <<<"$installed"; then
    echo "setup: adding $component"
    rustup component add --toolchain "$toolchain" "$component"
  fi
done
if ! rustup target list --toolchain "$toolchain" --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
fi
if ! command -v node >/dev/null 2>&1; then
  echo "setup: installing Node.js"
  apt-get update -qq && apt-get install -y -qq nodejs
fi
