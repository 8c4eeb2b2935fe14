-- mmm store schema for PostgreSQL, version 1: jobs, their items, attempts, events and
-- snapshots. The same record as SQLite's 0001_initial.sql, numbered alike, so that version N
-- means the same thing on both backends. Timestamps are epoch milliseconds (BIGINT); every
-- integer is BIGINT. Text that must read back byte for byte (the spec, item values) is TEXT;
-- event and snapshot payloads and step lists are JSONB, so that SQL can look inside them.
-- The statements run with `search_path` set to the store's schema.

-- Marks the schema as an mmm store and holds its version (PostgreSQL has no `user_version`).
CREATE TABLE mmm_store (
    singleton   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    application TEXT NOT NULL,
    version     BIGINT NOT NULL
);
INSERT INTO mmm_store (application, version) VALUES ('mmm', 0);

CREATE TABLE jobs (
    -- UUIDv7 as 32 lowercase hex digits; "C" collation so ORDER BY and LIKE 'prefix%' are
    -- plain byte order and use the primary key's index.
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    phase        TEXT,
    spec         TEXT NOT NULL,
    spec_hash    TEXT NOT NULL,
    source       TEXT,
    max_parallel BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    duration_ms  BIGINT NOT NULL DEFAULT 0,
    owner_pid    BIGINT,
    owner_host   TEXT,
    heartbeat_at BIGINT
);

CREATE TABLE items (
    job_id   TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx      BIGINT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    status   TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx),
    UNIQUE (job_id, key)
);

CREATE INDEX items_job_status ON items (job_id, status);

CREATE TABLE attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      TEXT COLLATE "C" NOT NULL,
    item_idx    BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    agent       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,              -- NULL while in flight
    duration_us BIGINT,
    outcome     TEXT,                -- NULL while in flight
    exit_code   BIGINT,
    error       TEXT,
    steps       JSONB NOT NULL DEFAULT '[]',
    stdout_tail TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    UNIQUE (job_id, item_idx, number),
    FOREIGN KEY (job_id, item_idx) REFERENCES items (job_id, idx) ON DELETE CASCADE
);

CREATE TABLE events (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id   TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    item_key TEXT,
    payload  JSONB NOT NULL
);

CREATE INDEX events_job_seq ON events (job_id, seq);

CREATE TABLE snapshots (
    job_id  TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      BIGINT NOT NULL,
    payload JSONB NOT NULL
);

CREATE INDEX snapshots_job_at ON snapshots (job_id, at);
