#!/usr/bin/env bash
# Runs exactly the tests docs/compliance.md names for each control and prints its table with each
# row's result: `pass` (every test of the row ran and passed), `FAIL` (one failed or did not run),
# `not built` (the row names no test: its control is not built yet). Exit status 1 if any row
# fails. Tests named `postgres::...` and the PostgreSQL conformance suite need the test PostgreSQL
# (scripts/postgres.sh starts it).
#   scripts/compliance.sh            run and print the table
#   scripts/compliance.sh --check    only check that every test the table names exists (from each
#                                    target's `--list`; scripts/test.sh runs this after its tests)
set -euo pipefail
cd "$(dirname "$0")/.."
check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: scripts/compliance.sh [--check]" >&2; exit 2 ;;
esac

doc=docs/compliance.md
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Every `package/target/test` reference of the table, one per line.
grep '^| [a-z]' "$doc" | grep -v '^| id ' | grep -o '`[a-z0-9-]*/[a-z0-9_]*/[A-Za-z0-9_:]*`' \
  | tr -d '`' | sort -u > "$out/refs"

if $check_only; then
  missing=0
  # Anything in the tests column that is not a `package/target/test` reference (a typo the
  # extraction above would drop silently).
  bad=$(grep '^| [a-z]' "$doc" | grep -v '^| id ' | awk -F'|' '{ print $(NF-1) }' \
    | grep -o '`[^`]*`' | grep -vx '`[a-z0-9-]*/[a-z0-9_]*/[A-Za-z0-9_:]*`' || true)
  if [ -n "$bad" ]; then
    printf 'compliance: not a package/target/test reference: %s\n' $bad >&2
    missing=1
  fi
  for group in $(cut -d/ -f1,2 "$out/refs" | sort -u); do
    pkg=${group%%/*}
    target=${group#*/}
    if [ "$target" = lib ]; then sel=(--lib); else sel=(--test "$target"); fi
    if ! cargo test -q -p "$pkg" "${sel[@]}" -- --list > "$out/list" 2> "$out/list.err"; then
      echo "compliance: cannot list the tests of $pkg $target:" >&2
      cat "$out/list.err" >&2
      exit 1
    fi
    for name in $(grep "^$group/" "$out/refs" | cut -d/ -f3-); do
      if ! grep -qx "$name: test" "$out/list"; then
        echo "compliance: docs/compliance.md names $group/$name, which is not a test" >&2
        missing=1
      fi
    done
  done
  [ "$missing" = 0 ] && echo "compliance: the $(wc -l < "$out/refs") tests docs/compliance.md names all exist"
  exit "$missing"
fi

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
