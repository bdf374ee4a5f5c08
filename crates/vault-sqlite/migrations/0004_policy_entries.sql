-- The newest `policy.store` entry is the policy of every node: found without scanning the log.
CREATE INDEX audit_policy ON audit (seq) WHERE action = 'policy.store';
