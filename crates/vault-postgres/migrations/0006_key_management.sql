-- Versioned data keys: one row per data key (its key material is the wrapped secret
-- `data-key:<id>`), with the number of encryptions made under it, so that the vault rotates it
-- well before AES-GCM's bound for random nonces. A vault made before holds data key 1: its count
-- starts at the number of values stored under it.
CREATE TABLE data_keys (
    id bigint PRIMARY KEY,
    created_at bigint NOT NULL,
    encryptions bigint NOT NULL DEFAULT 0
);
INSERT INTO data_keys (id, created_at, encryptions)
    SELECT 1, created_at, (SELECT count(*) FROM tokens) FROM secrets WHERE name = 'data-key:1';
-- Re-encryption finds the values still under an older data key without a full scan.
CREATE INDEX tokens_data_key ON tokens (data_key_id, token);
