-- Operators: people signing in with a password (Argon2id) and a TOTP code, separate from service
-- API keys. Every column of both tables is covered by the row's MAC under the row key. The table
-- first: a migration record cut back is then caught by its name existing already.
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER,
    failed_attempts INTEGER NOT NULL,
    locked_until INTEGER,
    last_totp_step INTEGER,
    generation INTEGER NOT NULL,
    mac TEXT NOT NULL
);
-- Sessions, by the SHA-256 of their token (the token itself is never stored).
CREATE TABLE operator_sessions (
    id TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    step_up_at INTEGER NOT NULL,
    mac TEXT NOT NULL
);
CREATE INDEX operator_sessions_last_seen ON operator_sessions (last_seen_at);
