-- Callers locked for a reveal anomaly, and unlocked: every vault node reads the entries newer
-- than the last it saw before each reveal. The index's condition is its query's, word for word
-- (SQLite uses a partial index only then).
CREATE INDEX audit_reveal_locks ON audit (seq) WHERE action IN ('reveal.lock', 'reveal.unlock');
