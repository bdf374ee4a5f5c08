-- API key lifecycle: rotation with an overlap (the previous secret's digest, accepted until
-- `previous_expires_at`, both covered by the row's MAC), and the time of last use (written at
-- most once an hour, not covered by the MAC), for disabling keys left unused; and the client
-- certificate (its SHA-256) a key is bound to, covered by the MAC.
ALTER TABLE api_keys ADD COLUMN previous_digest bytea;
ALTER TABLE api_keys ADD COLUMN previous_expires_at bigint;
ALTER TABLE api_keys ADD COLUMN last_used_at bigint;
ALTER TABLE api_keys ADD COLUMN client_cert_sha256 text;
