-- The mmm store schema as it is now (version 10), for a new store: one script instead of
-- replaying every migration (a new store is made by every `mmm run` in a new folder, and the
-- migrations' table rebuilds were a third of a short run's CPU). An existing store is brought
-- here by `migrations/` instead; `sqlite.rs`'s test `fresh_schema_matches_migrations`
-- checks that both give the same tables, columns, keys and indexes.
-- Timestamps are epoch milliseconds; JSON is stored as text.

-- Marks the file as an mmm store ("mmm1" in ASCII), so other SQLite files are told apart.
PRAGMA application_id = 1835887921;

CREATE TABLE jobs (
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

CREATE TABLE items (
    job_ref     INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
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

CREATE TABLE attempts (
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
    FOREIGN KEY (job_ref, item_idx) REFERENCES items (job_ref, idx) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_ref  INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    item_key TEXT,
    payload  TEXT NOT NULL
);

CREATE TABLE snapshots (
    job_ref INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    payload TEXT NOT NULL
);

CREATE TABLE checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_ref         INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
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

-- Control of running jobs (docs/control.md; see migrations/0005_control.sql).
CREATE TABLE control_requests (
    job_ref      INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    action       TEXT NOT NULL,       -- the action and its argument, JSON
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    applied_at   INTEGER,             -- NULL until the owner applied it
    PRIMARY KEY (job_ref, seq)
) WITHOUT ROWID;

CREATE TABLE job_controls (
    job_ref INTEGER PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    paused  INTEGER NOT NULL DEFAULT 0,
    suspend INTEGER NOT NULL DEFAULT 0,
    agents  INTEGER
);

-- Item logs (docs/logs.md; see migrations/0006_logs.sql).
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

-- Job summaries (`mmm stats`; see migrations/0008_job_summaries.sql).
CREATE TABLE job_summaries (
    job_ref    INTEGER PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    updated_at INTEGER NOT NULL,
    payload    TEXT NOT NULL
);
-- Items of ended jobs totalled by name (`/metrics`; see migrations/0009_item_totals.sql).
CREATE TABLE job_item_totals (
    job_ref INTEGER PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    pending INTEGER NOT NULL,
    running INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    timed INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    le_5000 INTEGER NOT NULL,
    le_10000 INTEGER NOT NULL,
    le_25000 INTEGER NOT NULL,
    le_50000 INTEGER NOT NULL,
    le_100000 INTEGER NOT NULL,
    le_250000 INTEGER NOT NULL,
    le_500000 INTEGER NOT NULL,
    le_1000000 INTEGER NOT NULL,
    le_2500000 INTEGER NOT NULL,
    le_5000000 INTEGER NOT NULL,
    le_10000000 INTEGER NOT NULL,
    le_30000000 INTEGER NOT NULL,
    le_60000000 INTEGER NOT NULL,
    le_300000000 INTEGER NOT NULL,
    le_900000000 INTEGER NOT NULL,
    le_3600000000 INTEGER NOT NULL
);

CREATE TABLE name_item_totals (
    name TEXT PRIMARY KEY,
    jobs INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    running INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    dead_lettered INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    timed INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    le_5000 INTEGER NOT NULL,
    le_10000 INTEGER NOT NULL,
    le_25000 INTEGER NOT NULL,
    le_50000 INTEGER NOT NULL,
    le_100000 INTEGER NOT NULL,
    le_250000 INTEGER NOT NULL,
    le_500000 INTEGER NOT NULL,
    le_1000000 INTEGER NOT NULL,
    le_2500000 INTEGER NOT NULL,
    le_5000000 INTEGER NOT NULL,
    le_10000000 INTEGER NOT NULL,
    le_30000000 INTEGER NOT NULL,
    le_60000000 INTEGER NOT NULL,
    le_300000000 INTEGER NOT NULL,
    le_900000000 INTEGER NOT NULL,
    le_3600000000 INTEGER NOT NULL
);

-- Limits of work that calls paid, rate-limited APIs (docs/api-work.md; see
-- migrations/0007_limits.sql).
CREATE TABLE start_rates (
    job_ref INTEGER PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    next_at INTEGER NOT NULL
);

CREATE TABLE job_budgets (
    job_ref    INTEGER NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    counter    TEXT NOT NULL,
    max        INTEGER NOT NULL,    -- a decimal budget is kept as a REAL (affinity)
    reached    INTEGER,             -- NULL while not reached
    reached_at INTEGER,
    PRIMARY KEY (job_ref, counter)
) WITHOUT ROWID;

-- Counts by status (`mmm jobs`, every view).
CREATE INDEX items_job_status ON items (job_ref, status);
-- What claims and resumes scan: the unfinished items of a job, in input order.
CREATE INDEX items_unfinished ON items (job_ref, idx)
    WHERE status IN ('pending', 'failed', 'running');
-- The jobs of a period, by creation time.
CREATE INDEX jobs_created ON jobs (created_at);
-- What `/metrics` totals by job name (see migrations/0009_item_totals.sql).
CREATE INDEX jobs_name_status ON jobs (name, status, duration_ms);
CREATE INDEX events_job_seq ON events (job_ref, seq);
CREATE INDEX snapshots_job_at ON snapshots (job_ref, at);
CREATE INDEX checkpoints_job ON checkpoints (job_ref, id);
CREATE UNIQUE INDEX log_chunks_attempt ON log_chunks (job_ref, item_idx, attempt, seq);
CREATE INDEX log_chunks_job ON log_chunks (job_ref, id);
