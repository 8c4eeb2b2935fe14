-- Item logs (docs/logs.md): every attempt's standard output and error as zstd-compressed
-- chunks of about 64 KiB of output each, numbered `seq` within their attempt. `byte_offset` is
-- the attempt's output before the chunk: a gap between two chunks is what the job's cap
-- dropped. `id` numbers chunks in the order they were written, what `--follow` reads after.
-- A table apart from the rest: no query of the record reads it, a job's chunks go with its
-- items (cascade), and `mmm logs prune` deletes them by job (autovacuum reuses the space).
CREATE TABLE log_chunks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_ref     BIGINT NOT NULL,
    item_idx    BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    FOREIGN KEY (job_ref, item_idx) REFERENCES items (job_ref, idx) ON DELETE CASCADE
);
-- The chunks are compressed already: TOAST stores them out of line without compressing
-- them again.
ALTER TABLE log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE UNIQUE INDEX log_chunks_attempt ON log_chunks (job_ref, item_idx, attempt, seq);
CREATE INDEX log_chunks_job ON log_chunks (job_ref, id);
