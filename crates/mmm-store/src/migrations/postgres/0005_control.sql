-- Control of running jobs (`mmm pause`, `unpause`, `scale`, `drain`, `cancel`;
-- docs/control.md). A request is a row numbered within its job, written with its
-- `control_requested` event under the job's row lock; the job's owner applies the requests in
-- order and sets `applied_at`. `job_controls` is what the requests made of the job (paused,
-- the agents of the last scale): a resume restores it.
CREATE TABLE control_requests (
    job_ref      BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    action       TEXT NOT NULL,       -- the action and its argument, JSON
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    applied_at   BIGINT,
    PRIMARY KEY (job_ref, seq)
);

CREATE TABLE job_controls (
    job_ref BIGINT PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    paused  BOOLEAN NOT NULL DEFAULT FALSE,
    suspend BOOLEAN NOT NULL DEFAULT FALSE,
    agents  BIGINT
);
