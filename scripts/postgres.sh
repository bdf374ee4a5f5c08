#!/usr/bin/env bash
# Makes sure the PostgreSQL the vault's tests use answers: FIELDSEAL_TEST_POSTGRES if set, else the
# machine's cluster on 127.0.0.1:5432 (trust auth, database `test`), started here if it is down.
# Fails loudly if it cannot be reached: the PostgreSQL backend's tests never skip.
set -euo pipefail

if [[ -n "${FIELDSEAL_TEST_POSTGRES:-}" ]]; then
    if ! pg_isready -q -d "$FIELDSEAL_TEST_POSTGRES" -t 10; then
        echo "error: FIELDSEAL_TEST_POSTGRES ($FIELDSEAL_TEST_POSTGRES) does not answer" >&2
        exit 1
    fi
    exit 0
fi

if pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL answers on 127.0.0.1:5432"
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null || [[ ! -d /etc/postgresql ]]; then
    echo "error: no PostgreSQL on 127.0.0.1:5432 and no cluster to start (pg_ctlcluster, /etc/postgresql);" >&2
    echo "       install PostgreSQL or set FIELDSEAL_TEST_POSTGRES=postgres://USER@HOST:PORT/DB" >&2
    exit 1
fi
version="$(ls /etc/postgresql | sort -V | tail -n 1)"
echo "starting PostgreSQL $version (cluster main)"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
if ! pg_isready -q -h 127.0.0.1 -p 5432 -t 30; then
    echo "error: PostgreSQL $version main did not come up on 127.0.0.1:5432" >&2
    tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" >&2 || true
    exit 1
fi
echo "PostgreSQL $version answers on 127.0.0.1:5432"
