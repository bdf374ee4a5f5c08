#!/usr/bin/env bash
# The demo storefront in one command: installs the toolchain on a fresh machine (scripts/setup.sh,
# without Chromium), builds what is not built yet, starts a fresh vault and the shop on 127.0.0.1,
# and prints the shop's URL and the demo API keys. Options: --port N (default 8080), --data-dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: checking the toolchain (scripts/setup.sh --no-browser)"
scripts/setup.sh --no-browser
exec node demo/start.mjs "$@"
