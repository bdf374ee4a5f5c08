-- Authenticated rows: a MAC under the audit key on every audit entry (and the envelope id a stored
-- tokenize entry consumed, indexed for the replay check), a MAC under the row key on API key and
-- HPKE key rows, and an optional expiry for API keys. Token values bind their whole row as AES-GCM
-- associated data (no column needed). Databases with entries written before this migration are
-- refused by the migration code: their rows carry no MACs to check.
ALTER TABLE audit ADD COLUMN envelope TEXT;
ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_envelope ON audit (envelope) WHERE envelope IS NOT NULL;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN mac TEXT NOT NULL DEFAULT '';
ALTER TABLE hpke_keys ADD COLUMN mac TEXT NOT NULL DEFAULT '';
