-- Resume: how the plan was built, checkpoints, and attempts superseded by a rewind
-- (SQLite's 0002_resume.sql).

-- JSON text (`spec::JobOrigin`): the job file (path and text) or the one-liner, plus overrides.
ALTER TABLE jobs ADD COLUMN origin TEXT;

-- The map input's size and modification time when its items were recorded (NULL for a
-- command's output): a resume reloads the input only when it changed.
ALTER TABLE jobs ADD COLUMN input_fingerprint TEXT;

-- True when a resume `--from CHECKPOINT` sent the attempt's item back to pending.
ALTER TABLE attempts ADD COLUMN superseded BOOLEAN NOT NULL DEFAULT FALSE;

-- A marker of where a job stood: at phase boundaries and at a steady interval.
CREATE TABLE checkpoints (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          TEXT COLLATE "C" NOT NULL REFERENCES jobs (id),
    at              BIGINT NOT NULL,
    phase           TEXT,
    reason          TEXT NOT NULL,
    -- The job's last event when the checkpoint was taken: what completed after it has a
    -- completion event with a higher seq.
    last_event_seq  BIGINT NOT NULL,
    completed       BIGINT NOT NULL,
    dead_lettered   BIGINT NOT NULL,
    skipped         BIGINT NOT NULL
);
CREATE INDEX checkpoints_job ON checkpoints (job_id, id);
