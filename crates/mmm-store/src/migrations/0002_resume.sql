-- Resume: how the plan was built, checkpoints, and attempts superseded by a rewind.

-- JSON (`spec::JobOrigin`): the job file (path and text) or the one-liner, plus overrides.
ALTER TABLE jobs ADD COLUMN origin TEXT;

-- The map input's size and modification time when its items were recorded (NULL for a
-- command's output): a resume reloads the input only when it changed.
ALTER TABLE jobs ADD COLUMN input_fingerprint TEXT;

-- 1 when a resume `--from CHECKPOINT` sent the attempt's item back to pending.
ALTER TABLE attempts ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;

-- A marker of where a job stood: at phase boundaries and at a steady interval.
CREATE TABLE checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL REFERENCES jobs (id),
    at              INTEGER NOT NULL,
    phase           TEXT,
    reason          TEXT NOT NULL,
    -- The job's last event when the checkpoint was taken: what completed after it has a
    -- completion event with a higher seq.
    last_event_seq  INTEGER NOT NULL,
    completed       INTEGER NOT NULL,
    dead_lettered   INTEGER NOT NULL,
    skipped         INTEGER NOT NULL
);
CREATE INDEX checkpoints_job ON checkpoints (job_id, id);
