-- How far each audit forwarder (`syslog_forward`) has got: the last entry's seq its receiver is
-- known to hold. Bookkeeping, not authenticated: moved forward it leaves a gap in the sequence
-- the receiver sees, moved back it repeats entries.
CREATE TABLE forward_cursors (
    name TEXT NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
