#!/usr/bin/env bash
# Shows the envelope flow end to end in the terminal: a vault key set, a card number sealed with a
# prepared context, the public header the merchant sees, and the vault opening it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --quiet --release -p fieldseal-core --features open,aws-lc --example seal_and_open
