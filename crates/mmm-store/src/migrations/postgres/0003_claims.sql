-- Scale-out (`mmm worker`): an item claimed by a process holds a lease until `lease_until`
-- (epoch ms), renewed while the process lives. An item whose lease ran out can be claimed by
-- another process; its attempt still in flight is then closed `interrupted`. Items run by a
-- process that does not claim (one owner, the default) keep both columns NULL.
ALTER TABLE items ADD COLUMN claimed_by TEXT;
ALTER TABLE items ADD COLUMN lease_until BIGINT;

-- What claims scan: the unfinished items of a job, in input order.
CREATE INDEX items_unfinished ON items (job_id, idx) WHERE status IN ('pending', 'failed', 'running');
