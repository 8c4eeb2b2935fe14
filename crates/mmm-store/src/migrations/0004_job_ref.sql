-- A smaller record per item (docs/PERFORMANCE.md, "Store size per item"): the tables under a
-- job refer to it by a small integer, `jobs.job_ref`, instead of repeating its 32-character
-- id in every row and index entry; `items` and `attempts` are clustered on their natural keys
-- (WITHOUT ROWID), which removes the index each of them kept beside its rows.
--
-- SQLite cannot change a column's type or a table's key in place, so every table is rebuilt:
-- a new table, a copy, the old one dropped, the new one renamed. Runs with foreign keys off
-- (`sqlite.rs`, `migrate`), which checks them before committing. Event sequence numbers,
-- checkpoint ids and the `sqlite_sequence` counters are kept, so nothing issued is reused.

CREATE TABLE jobs_new (
    job_ref           INTEGER PRIMARY KEY,        -- the job in the tables below
    id                TEXT NOT NULL UNIQUE,       -- UUIDv7, 32 lowercase hex digits
    name              TEXT NOT NULL,
    status            TEXT NOT NULL,
    phase             TEXT,
    spec              TEXT NOT NULL,
    spec_hash         TEXT NOT NULL,
    source            TEXT,
    max_parallel      INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    duration_ms       INTEGER NOT NULL DEFAULT 0,
    owner_pid         INTEGER,
    owner_host        TEXT,
    heartbeat_at      INTEGER,
    origin            TEXT,
    input_fingerprint TEXT
);
INSERT INTO jobs_new (id, name, status, phase, spec, spec_hash, source, max_parallel,
                      created_at, started_at, updated_at, finished_at, duration_ms, owner_pid,
                      owner_host, heartbeat_at, origin, input_fingerprint)
SELECT id, name, status, phase, spec, spec_hash, source, max_parallel, created_at, started_at,
       updated_at, finished_at, duration_ms, owner_pid, owner_host, heartbeat_at, origin,
       input_fingerprint
FROM jobs ORDER BY id;

CREATE TABLE items_new (
    job_ref     INTEGER NOT NULL REFERENCES jobs_new (job_ref) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    lease_until INTEGER,
    PRIMARY KEY (job_ref, idx),
    UNIQUE (job_ref, key)
) WITHOUT ROWID;
INSERT INTO items_new (job_ref, idx, key, value, status, attempts, claimed_by, lease_until)
SELECT j.job_ref, i.idx, i.key, i.value, i.status, i.attempts, i.claimed_by, i.lease_until
FROM items i JOIN jobs_new j ON j.id = i.job_id;

-- No `id` any more: nothing read it, and (job, item, number) is the key every query uses.
CREATE TABLE attempts_new (
    job_ref     INTEGER NOT NULL,
    item_idx    INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    agent       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,              -- NULL while in flight
    duration_us INTEGER,
    outcome     TEXT,                 -- NULL while in flight
    exit_code   INTEGER,
    error       TEXT,
    steps       TEXT NOT NULL DEFAULT '[]',
    stdout_tail TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    superseded  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_ref, item_idx, number),
    FOREIGN KEY (job_ref, item_idx) REFERENCES items_new (job_ref, idx) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO attempts_new (job_ref, item_idx, number, agent, started_at, ended_at, duration_us,
                          outcome, exit_code, error, steps, stdout_tail, stderr_tail,
                          superseded)
SELECT j.job_ref, a.item_idx, a.number, a.agent, a.started_at, a.ended_at, a.duration_us,
       a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail, a.superseded
FROM attempts a JOIN jobs_new j ON j.id = a.job_id;

CREATE TABLE events_new (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_ref  INTEGER NOT NULL REFERENCES jobs_new (job_ref) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    item_key TEXT,
    payload  TEXT NOT NULL
);
INSERT INTO events_new (seq, job_ref, at, kind, item_key, payload)
SELECT e.seq, j.job_ref, e.at, e.kind, e.item_key, e.payload
FROM events e JOIN jobs_new j ON j.id = e.job_id ORDER BY e.seq;

CREATE TABLE snapshots_new (
    job_ref INTEGER NOT NULL REFERENCES jobs_new (job_ref) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    payload TEXT NOT NULL
);
INSERT INTO snapshots_new (job_ref, at, payload)
SELECT j.job_ref, s.at, s.payload
FROM snapshots s JOIN jobs_new j ON j.id = s.job_id ORDER BY s.rowid;

-- Checkpoints now go with their job when it is deleted (`mmm store migrate`), like the rest.
CREATE TABLE checkpoints_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_ref         INTEGER NOT NULL REFERENCES jobs_new (job_ref) ON DELETE CASCADE,
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
INSERT INTO checkpoints_new (id, job_ref, at, phase, reason, last_event_seq, completed,
                             dead_lettered, skipped)
SELECT c.id, j.job_ref, c.at, c.phase, c.reason, c.last_event_seq, c.completed,
       c.dead_lettered, c.skipped
FROM checkpoints c JOIN jobs_new j ON j.id = c.job_id ORDER BY c.id;

-- The highest number ever issued, not the highest still present (a deleted job's events may
-- have been the last): the copies above set the new counters to the latter.
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT s.seq FROM sqlite_sequence s WHERE s.name = 'events'), 0))
WHERE name = 'events_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_new', seq FROM sqlite_sequence
WHERE name = 'events' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_new');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT s.seq FROM sqlite_sequence s WHERE s.name = 'checkpoints'), 0))
WHERE name = 'checkpoints_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'checkpoints_new', seq FROM sqlite_sequence
WHERE name = 'checkpoints'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'checkpoints_new');

DROP TABLE checkpoints;
DROP TABLE snapshots;
DROP TABLE events;
DROP TABLE attempts;
DROP TABLE items;
DROP TABLE jobs;

-- Renaming also renames the references to these tables in the others, and the counters in
-- `sqlite_sequence`.
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE items_new RENAME TO items;
ALTER TABLE attempts_new RENAME TO attempts;
ALTER TABLE events_new RENAME TO events;
ALTER TABLE snapshots_new RENAME TO snapshots;
ALTER TABLE checkpoints_new RENAME TO checkpoints;

-- Counts by status (`mmm jobs`, every view).
CREATE INDEX items_job_status ON items (job_ref, status);
-- What claims and resumes scan: the unfinished items of a job, in input order.
CREATE INDEX items_unfinished ON items (job_ref, idx)
    WHERE status IN ('pending', 'failed', 'running');
CREATE INDEX events_job_seq ON events (job_ref, seq);
CREATE INDEX snapshots_job_at ON snapshots (job_ref, at);
CREATE INDEX checkpoints_job ON checkpoints (job_ref, id);
