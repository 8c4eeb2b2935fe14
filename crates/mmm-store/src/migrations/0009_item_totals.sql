-- Items of ended jobs totalled by job name (`/metrics`, issue 21; `item_totals.rs`): a job's
-- items by status and its item durations as cumulative counts at the bounds
-- (`mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS`, in µs: `le_5000` counts the items
-- that took at most 5 ms), kept when its run ends (a finished status; not `interrupted`), and
-- their sums per name, kept with deltas, so a scrape reads one row per name. `timed` counts
-- the items the histogram counts (completed or dead-lettered), `duration_us` sums their
-- durations (an item's: its ended attempts' durations summed). `name` is the job's name.
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

-- What `/metrics` totals by job name on every scrape (`job_totals`: jobs by name and status
-- with their running time), read from this index alone, in its order: no sort, no table read.
CREATE INDEX jobs_name_status ON jobs (name, status, duration_ms);

-- The jobs that ended before this version, counted once here: one pass over the items and
-- attempts of the store.
INSERT INTO job_item_totals (job_ref, name, pending, running, completed, failed, dead_lettered, skipped, timed, duration_us, le_5000, le_10000, le_25000, le_50000, le_100000, le_250000, le_500000, le_1000000, le_2500000, le_5000000, le_10000000, le_30000000, le_60000000, le_300000000, le_900000000, le_3600000000)
SELECT j.job_ref, j.name,
       CAST(COALESCE(SUM(CASE WHEN t.status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status = 'dead_lettered' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status = 'skipped' THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') THEN t.us ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 5000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 10000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 25000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 50000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 100000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 250000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 500000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 1000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 2500000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 5000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 10000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 30000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 60000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 300000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 900000000 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN t.status IN ('completed', 'dead_lettered') AND t.us <= 3600000000 THEN 1 ELSE 0 END), 0) AS BIGINT)
FROM jobs j
LEFT JOIN (SELECT i.job_ref, i.status,
                  COALESCE((SELECT SUM(a.duration_us) FROM attempts a
                            WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx
                              AND a.outcome IS NOT NULL), 0) AS us
           FROM items i) t ON t.job_ref = j.job_ref
WHERE j.status NOT IN ('pending', 'running', 'interrupted')
GROUP BY j.job_ref, j.name;

INSERT INTO name_item_totals (name, jobs, pending, running, completed, failed, dead_lettered, skipped, timed, duration_us, le_5000, le_10000, le_25000, le_50000, le_100000, le_250000, le_500000, le_1000000, le_2500000, le_5000000, le_10000000, le_30000000, le_60000000, le_300000000, le_900000000, le_3600000000)
SELECT name, COUNT(*),
       SUM(pending),
       SUM(running),
       SUM(completed),
       SUM(failed),
       SUM(dead_lettered),
       SUM(skipped),
       SUM(timed),
       SUM(duration_us),
       SUM(le_5000),
       SUM(le_10000),
       SUM(le_25000),
       SUM(le_50000),
       SUM(le_100000),
       SUM(le_250000),
       SUM(le_500000),
       SUM(le_1000000),
       SUM(le_2500000),
       SUM(le_5000000),
       SUM(le_10000000),
       SUM(le_30000000),
       SUM(le_60000000),
       SUM(le_300000000),
       SUM(le_900000000),
       SUM(le_3600000000)
FROM job_item_totals GROUP BY name;
