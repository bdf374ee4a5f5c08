#!/usr/bin/env bash
# The vault over HTTP, this tree against an earlier revision, in one run on the same machine:
# builds `fieldseal-vault` (release) at REV in a temporary git worktree and here, then runs
# `fieldseal-loadgen` (this tree's) against each in turn, ROUNDS times, alternating, and prints the
# peak envelopes or tokens per second of each scenario per binary, their means and the change.
#   scripts/bench-vault-compare.sh REV [ROUNDS]    (default 2 rounds; about 2 minutes per run)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/bench-vault-compare.sh REV [ROUNDS]}
rounds=${2:-2}
out=bench-results/compare
mkdir -p "$out"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git worktree add --detach "$work/tree" "$rev" >/dev/null
# In a target directory of its own: sharing this tree's would let the two revisions' crates (same
# names, same versions) overwrite each other's artifacts.
CARGO_TARGET_DIR="$work/target" cargo build --release -p fieldseal-vault \
  --manifest-path "$work/tree/Cargo.toml"
cp "$work/target/release/fieldseal-vault" "$out/fieldseal-vault-before"
cargo build --release -p fieldseal-vault -p fieldseal-bench
cp target/release/fieldseal-vault "$out/fieldseal-vault-after"

for round in $(seq "$rounds"); do
  for which in before after; do
    echo "==> round $round: $which"
    target/release/fieldseal-loadgen --vault "$out/fieldseal-vault-$which" \
      --out "$out/vault-$which-$round.json" | tail -6
  done
done
node scripts/bench-vault-compare.mjs "$out" "$rev"
