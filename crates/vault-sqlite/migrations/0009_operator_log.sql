-- What the audit log says of each operator, read with its row (a row put back from before a
-- disable, reset or lock contradicts it): their entries by detail (`operator NAME`), newest last.
CREATE INDEX audit_operators ON audit (detail, seq) WHERE action IN ('operator.disable', 'operator.enable', 'operator.reset', 'operator.lock');
