-- mmm store schema, version 1: jobs, their items, attempts, events and snapshots.
-- Timestamps are epoch milliseconds; JSON is stored as text.

-- Marks the file as an mmm store ("mmm1" in ASCII), so other SQLite files are told apart.
PRAGMA application_id = 1835887921;

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY NOT NULL,  -- UUIDv7, 32 lowercase hex digits
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    phase        TEXT,
    spec         TEXT NOT NULL,
    spec_hash    TEXT NOT NULL,
    source       TEXT,
    max_parallel INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    owner_pid    INTEGER,
    owner_host   TEXT,
    heartbeat_at INTEGER
);

CREATE TABLE items (
    job_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    status   TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx),
    UNIQUE (job_id, key)
);

CREATE INDEX items_job_status ON items (job_id, status);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
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
    UNIQUE (job_id, item_idx, number),
    FOREIGN KEY (job_id, item_idx) REFERENCES items (job_id, idx) ON DELETE CASCADE
);

CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    item_key TEXT,
    payload  TEXT NOT NULL
);

CREATE INDEX events_job_seq ON events (job_id, seq);

CREATE TABLE snapshots (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    payload TEXT NOT NULL
);

CREATE INDEX snapshots_job_at ON snapshots (job_id, at);
