-- Job summaries (`mmm stats`, docs/stats.md): what a job's attempts, snapshots and events
-- say, kept as JSON text once the job has ended, so a period of thousands of jobs is
-- aggregated without reading their attempts. `updated_at` is the job's `updated_at` when the
-- summary was made: a job changed since (a resume, a DLQ retry) is summarised again.
CREATE TABLE job_summaries (
    job_ref    BIGINT PRIMARY KEY REFERENCES jobs (job_ref) ON DELETE CASCADE,
    updated_at BIGINT NOT NULL,
    payload    TEXT NOT NULL
);

-- The jobs of a period, by creation time.
CREATE INDEX jobs_created ON jobs (created_at);
