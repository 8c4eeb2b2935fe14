-- A smaller record per item (SQLite's 0004_job_ref.sql; docs/PERFORMANCE.md, "Store size per
-- item"): the tables under a job refer to it by a small integer, `jobs.job_ref`, instead of
-- repeating its 32-character id in every row and index entry, and `attempts` is keyed by
-- (job, item, number), without the identity column nothing read.
--
-- The tables under a job are rebuilt (new table, copy, drop, rename) rather than altered: a
-- dropped column stays in every row written afterwards (as a null), which would cost `items`
-- 8 bytes a row. Event sequence numbers and checkpoint ids are copied, and their sequences
-- continue from where the old ones stood, so nothing issued is reused.

ALTER TABLE jobs ADD COLUMN job_ref BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE jobs ADD CONSTRAINT jobs_job_ref_key UNIQUE (job_ref);

CREATE TABLE items_new (
    job_ref     BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    idx         BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    claimed_by  TEXT
);
INSERT INTO items_new (job_ref, idx, attempts, lease_until, key, value, status, claimed_by)
SELECT j.job_ref, i.idx, i.attempts, i.lease_until, i.key, i.value, i.status, i.claimed_by
FROM items i JOIN jobs j ON j.id = i.job_id;

CREATE TABLE attempts_new (
    job_ref     BIGINT NOT NULL,
    item_idx    BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,              -- NULL while in flight
    duration_us BIGINT,
    exit_code   BIGINT,
    superseded  BOOLEAN NOT NULL DEFAULT FALSE,
    agent       TEXT NOT NULL,
    outcome     TEXT,                -- NULL while in flight
    error       TEXT,
    steps       JSONB NOT NULL DEFAULT '[]',
    stdout_tail TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT ''
);
INSERT INTO attempts_new (job_ref, item_idx, number, started_at, ended_at, duration_us,
                          exit_code, superseded, agent, outcome, error, steps, stdout_tail,
                          stderr_tail)
SELECT j.job_ref, a.item_idx, a.number, a.started_at, a.ended_at, a.duration_us, a.exit_code,
       a.superseded, a.agent, a.outcome, a.error, a.steps, a.stdout_tail, a.stderr_tail
FROM attempts a JOIN jobs j ON j.id = a.job_id;

CREATE TABLE events_new (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY,
    job_ref  BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    item_key TEXT,
    payload  JSONB NOT NULL
);
INSERT INTO events_new (seq, job_ref, at, kind, item_key, payload) OVERRIDING SYSTEM VALUE
SELECT e.seq, j.job_ref, e.at, e.kind, e.item_key, e.payload
FROM events e JOIN jobs j ON j.id = e.job_id;
-- Continue from the old sequence (not from the highest seq left: a deleted job's events may
-- have been the last). A sequence never used has no last value and starts at 1 as before.
SELECT setval(pg_get_serial_sequence('events_new', 'seq'),
              COALESCE(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')), 1),
              pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')) IS NOT NULL);

CREATE TABLE snapshots_new (
    job_ref BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    at      BIGINT NOT NULL,
    payload JSONB NOT NULL
);
INSERT INTO snapshots_new (job_ref, at, payload)
SELECT j.job_ref, s.at, s.payload
FROM snapshots s JOIN jobs j ON j.id = s.job_id;

-- Checkpoints now go with their job when it is deleted (`mmm store migrate`), like the rest.
CREATE TABLE checkpoints_new (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    job_ref         BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
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
INSERT INTO checkpoints_new (id, job_ref, at, phase, reason, last_event_seq, completed,
                             dead_lettered, skipped) OVERRIDING SYSTEM VALUE
SELECT c.id, j.job_ref, c.at, c.phase, c.reason, c.last_event_seq, c.completed,
       c.dead_lettered, c.skipped
FROM checkpoints c JOIN jobs j ON j.id = c.job_id;
SELECT setval(pg_get_serial_sequence('checkpoints_new', 'id'),
              COALESCE(pg_sequence_last_value(pg_get_serial_sequence('checkpoints', 'id')), 1),
              pg_sequence_last_value(pg_get_serial_sequence('checkpoints', 'id')) IS NOT NULL);

DROP TABLE checkpoints, snapshots, events, attempts, items;

ALTER TABLE items_new RENAME TO items;
ALTER TABLE attempts_new RENAME TO attempts;
ALTER TABLE events_new RENAME TO events;
ALTER TABLE snapshots_new RENAME TO snapshots;
ALTER TABLE checkpoints_new RENAME TO checkpoints;
ALTER SEQUENCE events_new_seq_seq RENAME TO events_seq_seq;
ALTER SEQUENCE checkpoints_new_id_seq RENAME TO checkpoints_id_seq;

-- Keys and indexes once the old tables (and their names) are gone.
ALTER TABLE items ADD PRIMARY KEY (job_ref, idx), ADD UNIQUE (job_ref, key);
ALTER TABLE attempts ADD PRIMARY KEY (job_ref, item_idx, number),
    ADD FOREIGN KEY (job_ref, item_idx) REFERENCES items (job_ref, idx) ON DELETE CASCADE;
ALTER TABLE events ADD PRIMARY KEY (seq);
ALTER TABLE checkpoints ADD PRIMARY KEY (id);
ALTER TABLE items RENAME CONSTRAINT items_new_job_ref_fkey TO items_job_ref_fkey;
ALTER TABLE events RENAME CONSTRAINT events_new_job_ref_fkey TO events_job_ref_fkey;
ALTER TABLE snapshots RENAME CONSTRAINT snapshots_new_job_ref_fkey TO snapshots_job_ref_fkey;
ALTER TABLE checkpoints
    RENAME CONSTRAINT checkpoints_new_job_ref_fkey TO checkpoints_job_ref_fkey;

-- Counts by status (`mmm jobs`, every view).
CREATE INDEX items_job_status ON items (job_ref, status);
-- What claims and resumes scan: the unfinished items of a job, in input order.
CREATE INDEX items_unfinished ON items (job_ref, idx)
    WHERE status IN ('pending', 'failed', 'running');
CREATE INDEX events_job_seq ON events (job_ref, seq);
CREATE INDEX snapshots_job_at ON snapshots (job_ref, at);
CREATE INDEX checkpoints_job ON checkpoints (job_ref, id);
