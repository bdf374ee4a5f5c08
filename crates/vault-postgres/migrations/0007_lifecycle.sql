-- Data subjects. A token may name the merchant's customer it belongs to, stored only as a keyed
-- hash; that subject's values are encrypted under a key of its own, wrapped by a data key (the id
-- of which is recorded). Erasing the subject deletes its key and its tokens in one transaction.
-- The table first: a migration record cut back is then caught by its name existing already.
CREATE TABLE subject_keys (
    subject text PRIMARY KEY,
    data_key_id bigint NOT NULL,
    wrapped bytea NOT NULL,
    created_at bigint NOT NULL
);
ALTER TABLE tokens ADD COLUMN subject text;
CREATE INDEX tokens_subject ON tokens (subject) WHERE subject IS NOT NULL;
-- The log's record of erased subjects: a subject key put back from an older copy is caught.
CREATE INDEX audit_erased ON audit (detail) WHERE action = 'subject.erase';
