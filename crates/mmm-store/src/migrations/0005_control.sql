-- Control of running jobs (`mmm pause`, `unpause`, `scale`, `drain`, `cancel`;
-- docs/control.md). A request is a row numbered within its job, written with its
-- `control_requested` event; the job's owner applies the requests in order and sets
-- `applied_at`. `job_controls` is what the requests made of the job (paused, the agents of the
-- last scale): a resume restores it.
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
