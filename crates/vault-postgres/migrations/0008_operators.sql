-- Operators: people signing in with a password (Argon2id) and a TOTP code, separate from service
-- API keys. Every column of both tables is covered by the row's MAC under the row key. The table
-- first: a migration record cut back is then caught by its name existing already.
CREATE TABLE operators (
    name text PRIMARY KEY,
    role text NOT NULL,
    password_hash text NOT NULL,
    totp_wrapped bytea NOT NULL,
    created_at bigint NOT NULL,
    disabled_at bigint,
    failed_attempts bigint NOT NULL,
    locked_until bigint,
    last_totp_step bigint,
    generation bigint NOT NULL,
    mac text NOT NULL
);
-- Sessions, by the SHA-256 of their token (the token itself is never stored).
CREATE TABLE operator_sessions (
    id text PRIMARY KEY,
    operator text NOT NULL,
    generation bigint NOT NULL,
    created_at bigint NOT NULL,
    last_seen_at bigint NOT NULL,
    step_up_at bigint NOT NULL,
    mac text NOT NULL
);
CREATE INDEX operator_sessions_last_seen ON operator_sessions (last_seen_at);
