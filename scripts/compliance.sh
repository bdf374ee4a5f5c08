#!/usr/bin/env bash
# Runs exactly the tests docs/compliance.md names for each control and prints its table with each
# row's result: `pass` (every test of the row ran and passed), `FAIL` (one failed or did not run),
# `not built` (the row names no test: its control is not built yet). Exit status 1 if any row
# fails. Tests named `postgres::...` and the PostgreSQL conformance suite need the test PostgreSQL
# (scripts/postgres.sh starts it).
#   scripts/compliance.sh            run and print the table
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/compliance.md
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Every `package/target/test` reference of the table, one per line.
grep '^| [a-z]' "$doc" | grep -v '^| id ' | grep -o '`[a-z0-9-]*/[a-z0-9_]*/[A-Za-z0-9_:]*`' \
  | tr -d '`' | sort -u > "$out/refs"

# One cargo test per package and target, with every test of it as an exact filter.
results="$out/results"
: > "$results"
for group in $(cut -d/ -f1,2 "$out/refs" | sort -u); do
  pkg=${group%%/*}
  target=${group#*/}
  mapfile -t names < <(grep "^$group/" "$out/refs" | cut -d/ -f3-)
  if [ "$target" = lib ]; then sel=(--lib); else sel=(--test "$target"); fi
  printf '==> %s %s: %d tests\n' "$pkg" "$target" "${#names[@]}" >&2
  log="$out/$pkg-$target.log"
  cargo test -p "$pkg" "${sel[@]}" -- --exact --test-threads 4 "${names[@]}" > "$log" 2>&1 || true
  for name in "${names[@]}"; do
    if grep -qE "^test $name \.\.\. ok$" "$log"; then
      echo "$pkg/$target/$name pass" >> "$results"
    else
      echo "$pkg/$target/$name FAIL" >> "$results"
      printf '    %s: failed or did not run (log: see below)\n' "$name" >&2
      grep -A20 -E "^---- $name |error(\[|:)" "$log" | head -40 >&2 || true
    fi
  done
done

# The table, one line per control.
failed=0
printf '\n%-16s %-10s %s\n' control result requirement
grep '^| [a-z]' "$doc" | grep -v '^| id ' | while IFS='|' read -r _ id req _ _ tests _; do
  id=$(echo "$id" | xargs)
  req=$(echo "$req" | sed 's/^ *//; s/ *$//' | cut -c1-70)
  refs=$(echo "$tests" | grep -o '`[a-z0-9-]*/[a-z0-9_]*/[A-Za-z0-9_:]*`' | tr -d '`' || true)
  if [ -z "$refs" ]; then
    result="not built"
  else
    result=pass
    for r in $refs; do
      grep -qx "$r pass" "$results" || result=FAIL
    done
  fi
  printf '%-16s %-10s %s\n' "$id" "$result" "$req"
  [ "$result" != FAIL ] || echo fail >> "$out/failed"
done
if [ -s "$out/failed" ]; then failed=1; fi
printf '\n%d tests run for %d controls.\n' "$(wc -l < "$results")" "$(grep -c '^| [a-z]' "$doc" | awk '{print $1-1}')"
exit "$failed"
