-- Authenticated rows: a MAC under the audit key on every audit entry (and the envelope a stored
-- tokenize entry consumed, uniquely indexed: the replay check), a MAC under the row key on API key and
-- HPKE key rows, and an optional expiry for API keys. Token values bind their whole row as AES-GCM
-- associated data (no column needed). Databases with entries written before this migration are
-- refused by the migration code: their rows carry no MACs to check.
ALTER TABLE audit ADD COLUMN envelope TEXT;
ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX audit_envelope ON audit (envelope) WHERE envelope IS NOT NULL;
-- The log's entries are the record of consumed envelopes (an entry cannot be removed unnoticed, a
-- replay row could): the replay table goes.
DROP TABLE replay;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN mac TEXT NOT NULL DEFAULT '';
ALTER TABLE hpke_keys ADD COLUMN mac TEXT NOT NULL DEFAULT '';
-- The log's record of what ended: revoked API keys, retired HPKE keys, deleted tokens and card
-- security codes used. A row put back from an older copy after its end is caught against these.
CREATE INDEX audit_revoked ON audit (detail) WHERE action = 'apikey.revoke';
CREATE INDEX audit_retired ON audit (detail) WHERE action = 'key.retire';
CREATE INDEX audit_ended_tokens ON audit (token) WHERE (action = 'delete' AND outcome = 'ok') OR (action = 'reveal' AND outcome = 'plain' AND kind = 'cvc');
