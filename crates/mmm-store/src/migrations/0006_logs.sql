-- Item logs (docs/logs.md): every attempt's standard output and error as zstd-compressed
-- chunks of about 64 KiB of output each, numbered `seq` within their attempt. `byte_offset` is
-- the attempt's output before the chunk: a gap between two chunks is what the job's cap
-- dropped. `id` numbers chunks in the order they were written, what `--follow` reads after.
-- A table apart from the rest: no query of the record reads it, a job's chunks go with its
-- items (cascade), and `mmm logs prune` deletes them by job.
CREATE TABLE log_chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_ref     INTEGER NOT NULL,
    item_idx    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    data        BLOB NOT NULL,
    FOREIGN KEY (job_ref, item_idx) REFERENCES items (job_ref, idx) ON DELETE CASCADE
);

CREATE UNIQUE INDEX log_chunks_attempt ON log_chunks (job_ref, item_idx, attempt, seq);
CREATE INDEX log_chunks_job ON log_chunks (job_ref, id);
