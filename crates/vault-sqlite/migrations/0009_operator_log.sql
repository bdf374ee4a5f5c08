-- What the audit log says of each operator, read with its row (a row put back from before a
-- disable, reset or lock contradicts it): the entries that bump its generation, and its locks, by
-- detail (`operator NAME`). Each index's condition is the one its query states, word for word
-- (SQLite uses a partial index only then).
CREATE INDEX audit_operator_changes ON audit (detail, seq) WHERE action IN ('operator.disable', 'operator.reset');
CREATE INDEX audit_operator_locks ON audit (detail, at) WHERE action = 'operator.lock';
