-- The schema of a vault on PostgreSQL, in the schema the connection's search_path names (the
-- vault qualifies no table). Same tables as the SQLite backend: secrets wrapped under the KEK,
-- HPKE keys, tokens, API keys, the hash-chained audit log and its anchored head.
CREATE TABLE secrets (
    name text PRIMARY KEY,
    wrapped bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE TABLE hpke_keys (
    -- Insertion order ("oldest first"): two keys made in the same second keep their order.
    position bigint GENERATED ALWAYS AS IDENTITY,
    kid text PRIMARY KEY,
    public_key bytea NOT NULL,
    wrapped_private bytea NOT NULL,
    created_at bigint NOT NULL,
    not_before bigint NOT NULL,
    expires_at bigint NOT NULL,
    retired_at bigint,
    mac text NOT NULL
);
CREATE TABLE tokens (
    token text PRIMARY KEY,
    kind text NOT NULL,
    data_key_id bigint NOT NULL,
    ciphertext bytea NOT NULL,
    fingerprint text NOT NULL,
    brand text,
    bin text,
    last4 text,
    created_at bigint NOT NULL,
    expires_at bigint
);
-- Ciphertexts do not compress: store them out of line without trying.
ALTER TABLE tokens ALTER COLUMN ciphertext SET STORAGE EXTERNAL;
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    digest bytea NOT NULL,
    role text NOT NULL,
    label text NOT NULL,
    created_at bigint NOT NULL,
    revoked_at bigint,
    expires_at bigint,
    mac text NOT NULL
);
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    token text,
    kind text,
    purpose text,
    outcome text NOT NULL,
    detail text NOT NULL,
    envelope text,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    mac text NOT NULL
);
-- The log's entries are the record of consumed envelopes; the unique index is the backstop of
-- the check every tokenize makes under the audit lock.
CREATE UNIQUE INDEX audit_envelope ON audit (envelope) WHERE envelope IS NOT NULL;
-- The log's record of what ended: revoked API keys, retired HPKE keys, deleted tokens and card
-- security codes used. A row put back from an older copy after its end is caught against these.
CREATE INDEX audit_revoked ON audit (detail) WHERE action = 'apikey.revoke';
CREATE INDEX audit_retired ON audit (detail) WHERE action = 'key.retire';
CREATE INDEX audit_ended_tokens ON audit (token) WHERE (action = 'delete' AND outcome = 'ok') OR (action = 'reveal' AND outcome = 'plain' AND kind = 'cvc');
-- The anchored head of the audit chain, updated with every append.
CREATE TABLE audit_head (
    id integer PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash text NOT NULL,
    mac text NOT NULL
);
