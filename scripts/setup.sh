#!/usr/bin/env bash
# Installs what building and testing fieldseal needs on a fresh machine, and nothing that is
# already there: the pinned Rust toolchain's components and the wasm32 target (rust-toolchain.toml),
# Node.js, the wasm-bindgen CLI at exactly the crate's pinned version, Debian's Chromium and
# ChromeDriver (browser tests; never a downloaded browser), Debian's ripgrep (the discovery
# scanner's throughput reference in scripts/bench-scan.sh), Debian's SoftHSM2 (a real PKCS#11 token
# for the key-management tests and the `pkcs11` KEK provider), Debian's rsyslog (a real syslog
# receiver for the SIEM forwarding test; the test starts its own on a loopback port), schemathesis in .venv-schemathesis
# (scripts/api-fuzz.sh), and the npm devDependencies (npm ci).
# `--no-browser` leaves Chromium out (the demo does not need it).
set -euo pipefail
browser=1
[ "${1:-}" = "--no-browser" ] && browser=0
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
if ! command -v rg >/dev/null 2>&1; then
  echo "setup: installing Debian's ripgrep"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ripgrep
fi
if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "setup: installing Debian's softhsm2"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2
fi
if ! command -v rsyslogd >/dev/null 2>&1; then
  echo "setup: installing Debian's rsyslog"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog
fi

# The wasm-bindgen CLI must be the exact version Cargo.lock pins for the wasm-bindgen crate.
wb=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$wb" ] \
  || [ "$(wasm-bindgen-test-runner --version 2>/dev/null | cut -d' ' -f2)" != "$wb" ]; then
  echo "setup: installing wasm-bindgen-cli $wb"
  cargo install wasm-bindgen-cli --version "$wb"
fi
if [ "$browser" = 1 ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
  echo "setup: installing Debian's chromium and chromium-driver"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
# schemathesis (scripts/api-fuzz.sh: the OpenAPI document against the running vault), at exactly
# this version, in a project-local virtualenv (ignored by git).
schemathesis_version=4.32.5
if [ "$(.venv-schemathesis/bin/schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$schemathesis_version" ]; then
  echo "setup: installing schemathesis $schemathesis_version in .venv-schemathesis"
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv .venv-schemathesis
  .venv-schemathesis/bin/pip install --quiet "schemathesis==$schemathesis_version"
fi
# npm ci again only when package-lock.json changed since the last install.
if ! cmp -s package-lock.json node_modules/.fieldseal-installed-lock 2>/dev/null; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.fieldseal-installed-lock
fi
