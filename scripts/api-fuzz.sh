#!/usr/bin/env bash
# Checks that the vault's OpenAPI document is exact: schemathesis (pinned in scripts/setup.sh,
# installed in .venv-schemathesis) generates requests from the document the real vault binary
# serves at /v1/openapi.json, valid ones and invalid ones, and checks every answer against it:
# no 5xx, only documented status codes, content types and headers, bodies matching the response
# schemas, invalid requests refused, valid ones accepted, and secured operations refusing a missing
# or wrong key. It runs once per built-in role's API key and once with no key, against one vault
# (SQLite, in a temporary directory, plain HTTP on 127.0.0.1).
#
#   scripts/api-fuzz.sh                 # the fieldseal-vault binary cargo builds (debug)
#   FIELDSEAL_FUZZ_MAX_EXAMPLES=200 scripts/api-fuzz.sh   # more cases per operation (default 100)
#   FIELDSEAL_FUZZ_SEED=1234 scripts/api-fuzz.sh          # repeat a run (each run prints its seed)
#
# Outside CI each run draws a new seed and so explores new cases; with CI set and no
# FIELDSEAL_FUZZ_SEED, the seed is fixed, so that CI's verdict depends on the code, not on the draw,
# and a red run replays as it is.
#
# Exits non-zero on any failure; schemathesis prints each failing case with a curl command that
# reproduces it. The vault's log is kept in the temporary directory named at the end on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-schemathesis
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "api-fuzz: $venv/bin/schemathesis is missing; run scripts/setup.sh" >&2
  exit 1
fi
max_examples=${FIELDSEAL_FUZZ_MAX_EXAMPLES:-100}
seed=${FIELDSEAL_FUZZ_SEED:-}
[ -z "$seed" ] && [ -n "${CI:-}" ] && seed=20261202
seed_args=()
[ -n "$seed" ] && seed_args=(--seed "$seed")

cargo build --quiet -p fieldseal-vault --bin fieldseal-vault
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/fieldseal-vault"

work=$(mktemp -d)
vault_pid=
cleanup() {
  status=$?
  if [ -n "$vault_pid" ]; then
    kill "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
  fi
  if [ "$status" = 0 ]; then
    rm -rf "$work"
  else
    echo "api-fuzz: failed; the vault's log is $work/vault.log" >&2
  fi
}
trap cleanup EXIT

export FIELDSEAL_DATA_DIR="$work/data"
# The master key in a file of its own, outside the data directory (as `init` requires).
export FIELDSEAL_MASTER_KEY_FILE="$work/master.key"
export FIELDSEAL_LISTEN=127.0.0.1:0
unset FIELDSEAL_DATABASE_URL FIELDSEAL_MASTER_KEY FIELDSEAL_CONFIG FIELDSEAL_POLICY_FILE \
  FIELDSEAL_KEK_PROVIDER
# Every run sends requests without a key or with a wrong one (that is what the anonymous run and
# the `ignored_auth` check are about): the address is not throttled for them, so that every run
# reaches the endpoints. The throttle's own answer (429 too_many_failures, documented on every
# secured operation) is covered by the authorization matrix test.
export FIELDSEAL_AUTH_FAILURES_BEFORE_THROTTLE=1000000
mkdir -p "$FIELDSEAL_DATA_DIR"
"$bin" init >/dev/null
declare -A keys
for role in checkout support payments auditor privacy security; do
  keys[$role]=$("$bin" apikey create --role "$role" --label "api-fuzz $role" 2>/dev/null)
done

coproc VAULT { exec "$bin" serve 2>"$work/vault.log"; }
vault_pid=$VAULT_PID
read -r line <&"${VAULT[0]}"
base=${line#fieldseal-vault listening on }
if [ "$base" = "$line" ]; then
  echo "api-fuzz: the vault did not start: $line" >&2
  exit 1
fi
echo "api-fuzz: vault at $base, $max_examples cases per operation and caller"

failed=0
for caller in checkout support payments auditor privacy security anonymous; do
  auth=()
  [ "$caller" != anonymous ] && auth=(-H "Authorization: Bearer ${keys[$caller]}")
  echo "==> schemathesis as $caller"
  if ! "$venv/bin/schemathesis" --config-file scripts/schemathesis.toml \
    run "$base/v1/openapi.json" \
    "${auth[@]}" \
    --checks all \
    --max-examples "$max_examples" \
    --workers 1 \
    --request-timeout 10 \
    --output-sanitize true \
    --warnings off \
    "${seed_args[@]}"; then
    failed=1
  fi
done
exit "$failed"
