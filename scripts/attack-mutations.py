#!/usr/bin/env python3
"""Removes each defence of the vault against a database writer, one at a time, and checks that the
attack test written for it fails (crates/vault/tests/attacks.rs), then puts the code back.

    scripts/attack-mutations.py            # every defence (about 30 s each once built)
    scripts/attack-mutations.py NAME ...   # some of them

Each mutation names the file, the exact code of the defence and what replaces it, and the tests
that must fail without it. A mutation whose code is no longer found fails loudly: update it with the
defence. Not part of scripts/test.sh (it rebuilds the vault once per mutation)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

MUTATIONS = {
    "entry MAC": (
        "crates/vault-store/src/audit.rs",
        "    if !ct_eq(\n        entry_mac(key, r.seq, &computed)",
        "    if false && !ct_eq(\n        entry_mac(key, r.seq, &computed)",
        ["sqlite::edit_an_entry_purpose_even_rehashing_the_chain", "postgres::edit_an_entry_purpose_even_rehashing_the_chain"],
    ),
    "head against tail": (
        "crates/vault-store/src/audit.rs",
        "            if h.seq > t.seq {",
        "            if false && h.seq > t.seq {",
        ["sqlite::truncate_the_tail_of_a_stopped_vault", "postgres::truncate_the_tail_of_a_stopped_vault"],
    ),
    "high-water mark": (
        "crates/vault-store/src/audit.rs",
        "        if seq < seen_seq {",
        "        if false && seq < seen_seq {",
        ["sqlite::truncate_the_tail_and_put_back_an_older_head", "postgres::truncate_the_tail_and_put_back_an_older_head"],
    ),
    "empty log is a break": (
        "crates/vault-store/src/audit.rs",
        "        (None, None) if genesis => Ok((0, [0u8; 32])),",
        "        (None, None) => Ok((0, [0u8; 32])),",
        ["sqlite::delete_every_entry_and_the_head", "postgres::delete_every_entry_and_the_head"],
    ),
    "API key row MAC": (
        "crates/vault/src/vault.rs",
        "self.secrets.row_key.api_key_ok(k) && !(k.revoked_in_log && k.revoked_at.is_none())",
        "!(k.revoked_in_log && k.revoked_at.is_none())",
        # An un-revoked key is caught by this MAC and by the log's revocation record alike.
        ["sqlite::insert_a_forged_api_key_row", "postgres::insert_a_forged_api_key_row", "sqlite::change_a_key_role", "postgres::change_a_key_role"],
    ),
    "revocations in the log": (
        "crates/vault/src/vault.rs",
        "self.secrets.row_key.api_key_ok(k) && !(k.revoked_in_log && k.revoked_at.is_none())",
        "self.secrets.row_key.api_key_ok(k)",
        ["sqlite::put_back_a_revoked_key_row_from_an_older_copy", "postgres::put_back_a_revoked_key_row_from_an_older_copy"],
    ),
    "whole row as associated data": (
        "crates/vault-store/src/records.rs",
        "            t.kind.as_bytes(),\n            &t.data_key_id.to_be_bytes(),",
        "            &t.data_key_id.to_be_bytes(),",
        ["sqlite::relabel_a_token_kind", "postgres::relabel_a_token_kind"],
    ),
    "expiry in associated data": (
        "crates/vault-store/src/records.rs",
        "            &opt_i64(t.expires_at),\n        ],",
        "        ],",
        ["sqlite::clear_a_cvc_expiry", "postgres::clear_a_cvc_expiry"],
    ),
    "used CVCs in the log": (
        "crates/vault/src/vault.rs",
        'let put_back = record.ended_in_log && token.starts_with("tok_");',
        "let put_back = false;",
        ["sqlite::put_back_a_used_cvc", "postgres::put_back_a_used_cvc"],
    ),
    "replay check in the log": (
        "crates/vault-sqlite/src/lib.rs",
        "    let seen = envelope_seen(tx, &item.envelope.key())?;",
        "    let seen = false;",
        ["sqlite::delete_the_record_of_an_envelope_to_resubmit_it"],
    ),
    "type-blind replay lookup": (
        "crates/vault-sqlite/src/lib.rs",
        "WHERE envelope IN (?1, CAST(?1 AS BLOB))",
        "WHERE envelope IN (?1)",
        ["retype_envelope_ids_to_resubmit"],
    ),
    "HPKE key row MAC": (
        "crates/vault/src/keys.rs",
        "row_key.hpke_key_ok(k) && !(k.retired_in_log && k.retired_at.is_none())",
        "!(k.retired_in_log && k.retired_at.is_none())",
        ["sqlite::replace_an_hpke_public_key", "postgres::replace_an_hpke_public_key"],
    ),
    "retirements in the log": (
        "crates/vault/src/keys.rs",
        "row_key.hpke_key_ok(k) && !(k.retired_in_log && k.retired_at.is_none())",
        "row_key.hpke_key_ok(k)",
        ["sqlite::put_back_a_retired_hpke_key_row", "postgres::put_back_a_retired_hpke_key_row"],
    ),
    "schema check": (
        "crates/vault-sqlite/src/lib.rs",
        "    if actual == expected {",
        "    if true || actual == expected {",
        ["sqlite::a_trigger_that_undoes_revocations"],
    ),
    "reads by storage class": (
        "crates/vault-sqlite/src/lib.rs",
        "        ValueRef::Integer(n) => n,\n        _ => WRONG_NUMBER,",
        "        ValueRef::Integer(n) => n,\n        _ => return r.get(i),",
        ["a_value_of_the_wrong_type_in_a_key_row"],
    ),
    "PostgreSQL: replay check in the log": (
        "crates/vault-postgres/src/lib.rs",
        "    let outcome = if seen {",
        "    let outcome = if false && seen {",
        ["postgres::delete_the_record_of_an_envelope_to_resubmit_it"],
    ),
    "PostgreSQL: write-path check in every write transaction": (
        "crates/vault-postgres/src/lib.rs",
        "        if found.is_none() || found != known {",
        "        if false && (found.is_none() || found != known) {",
        ["postgres_a_rule_that_swallows_revocations", "postgres_the_write_path_changed_under_a_running_vault"],
    ),
    "PostgreSQL: schema check": (
        "crates/vault-postgres/src/lib.rs",
        "    if expected == actual {\n        return None;",
        "    if true || expected == actual {\n        return None;",
        ["postgres::a_trigger_that_undoes_revocations", "postgres_functions_and_operators_shadowing_builtins"],
    ),
    "stored policy's MAC": (
        "crates/vault/src/policy.rs",
        "Some(e) if !fieldseal_vault_store::audit::entry_authentic(audit_key, &e) => {",
        "Some(e) if false => {",
        ["sqlite::widen_the_stored_policy", "postgres::widen_the_stored_policy"],
    ),
    "entries past the head": (
        "crates/vault-store/src/verify.rs",
        "        && last.seq > h.seq\n",
        "        && last.seq > i64::MAX - 1\n",
        ["sqlite::forge_an_entry_past_the_head", "postgres::forge_an_entry_past_the_head"],
    ),
}


def failing_tests() -> set[str]:
    run = subprocess.run(
        ["cargo", "test", "-p", "fieldseal-vault", "--test", "attacks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    out = run.stdout + run.stderr
    if "error[E" in out:
        sys.exit(f"the mutated code does not compile:\n{out[-3000:]}")
    return {line.split()[1] for line in out.splitlines() if line.startswith("test ") and line.endswith("FAILED")}


def main() -> int:
    names = sys.argv[1:] or list(MUTATIONS)
    bad = 0
    for name in names:
        path, code, replacement, expected = MUTATIONS[name]
        file = ROOT / path
        original = file.read_text()
        if original.count(code) != 1:
            print(f"{name}: the defence's code is not found once in {path}; update this script")
            bad += 1
            continue
        file.write_text(original.replace(code, replacement))
        try:
            failed = failing_tests()
        finally:
            file.write_text(original)
        missing = [t for t in expected if t not in failed]
        verdict = "ok" if not missing else f"NOT CAUGHT by {', '.join(missing)}"
        print(f"without {name}: failing {sorted(failed) or 'nothing'}: {verdict}")
        bad += bool(missing)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
