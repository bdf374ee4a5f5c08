-- How much each key was used and when last, as the nodes count them (for `keys status`):
-- bookkeeping, not authenticated.
CREATE TABLE key_uses (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    uses INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
