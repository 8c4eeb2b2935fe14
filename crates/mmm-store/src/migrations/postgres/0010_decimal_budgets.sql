-- Counters have decimals (`mmm report --counter cost_usd=+0.0125`, docs/api-work.md): a budget
-- and the counter's total when it was reached are `double precision`, as a BIGINT would
-- refuse 49.5. Existing whole budgets convert exactly.
ALTER TABLE job_budgets
    ALTER COLUMN max TYPE double precision,
    ALTER COLUMN reached TYPE double precision;
