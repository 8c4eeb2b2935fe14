-- Limits of work that calls paid, rate-limited APIs (docs/api-work.md).
-- `start_rates`: a job's start-rate schedule, one row per job: when the next attempt may start
-- (microseconds since the epoch). Every process of the job reserves a start by moving it on by
-- the rate's interval in one atomic update, so they share one schedule.
-- `job_budgets`: a job's budgets on counters (the plan's, then as `mmm budget` set them);
-- `reached` is the counter's total when it was found at its budget (the job is paused then).
CREATE TABLE start_rates (
    job_ref BIGINT PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    next_at BIGINT NOT NULL
);

CREATE TABLE job_budgets (
    job_ref    BIGINT NOT NULL REFERENCES jobs (job_ref) ON DELETE CASCADE,
    counter    TEXT NOT NULL,
    max        BIGINT NOT NULL,
    reached    BIGINT,             -- NULL while not reached
    reached_at BIGINT,
    PRIMARY KEY (job_ref, counter)
);
