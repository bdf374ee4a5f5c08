-- How much each key was used and when last, as the nodes count them (for `keys status`):
-- bookkeeping, not authenticated.
CREATE TABLE key_uses (
    kind text NOT NULL,
    id text NOT NULL,
    uses bigint NOT NULL,
    last_used_at bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
