#!/usr/bin/env bash
# pg_restart.sh - PostgreSQL restarted twice under a running job: a coordinator and two workers
# on a PostgreSQL store ride both restarts out and finish the job on their own.
#
# usage: bench/pg_restart.sh [ITEMS]   (default 5000)
#        PGURL=postgres://postgres@127.0.0.1:5432/test   the server (restarted with
#        RESTART="pg_ctlcluster --skip-systemctl-redirect 15 main restart" by default)
#
# Restarts the local cluster: run it on a machine where nothing else uses that server. Prints
# how long each restart kept the job from progressing, the job's end, how many items ran more
# than once (bounded by what was in flight at each restart) and how many succeeded more than
# once (must be 0).
set -euo pipefail
N=${1:-5000}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
RESTART=${RESTART:-pg_ctlcluster --skip-systemctl-redirect 15 main restart}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
schema=mmm_bench_restart_$$
STORE="$PGURL?schema=$schema"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg_restart.XXXXXX")
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  psql "$PGURL" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
seq 1 "$N" > items.txt
cat > job.yml <<'EOF'
map:
  input: items.txt
  max_parallel: 2
  steps:
    - shell: sleep 0.01; echo "${item}" >> ran.txt
EOF
sql() { psql "$PGURL" -Atqc "$1" 2>/dev/null || echo "?"; }
completed() { sql "select count(*) from $schema.items where status = 'completed'"; }

start=$(date +%s%N)
"$MMM" run job.yml --store "$STORE" --progress none 2>coordinator.log &
coordinator=$!
until [ "$(completed)" != "?" ] && [ "$(completed)" -gt 0 ]; do sleep 0.2; done
job=$(sql "select id from $schema.jobs limit 1")
"$MMM" worker --store "$STORE" --job "$job" -j 2 --name w1 --exit-when-idle -q 2>w1.log &
w1=$!
"$MMM" worker --store "$STORE" --job "$job" -j 2 --name w2 --exit-when-idle -q 2>w2.log &
w2=$!
for at in $((N / 4)) $((N / 2)); do
  until [ "$(completed)" != "?" ] && [ "$(completed)" -ge "$at" ]; do sleep 0.2; done
  before=$(completed)
  t0=$(date +%s%N)
  $RESTART
  # Until the job progresses again.
  until now=$(completed) && [ "$now" != "?" ] && [ "$now" -gt "$before" ]; do sleep 0.05; done
  t1=$(date +%s%N)
  echo "restart at $before items done: progressing again after $(( (t1 - t0) / 1000000 )) ms"
done
status=0
wait "$coordinator" || status=$?
wait "$w1" || true
wait "$w2" || true
end=$(date +%s%N)
echo "coordinator exit $status after $(( (end - start) / 1000000000 )) s; job: $(sql "select status from $schema.jobs")"
echo "items completed: $(completed) of $N"
echo "items run more than once: $(sort ran.txt | uniq -d | wc -l) (bounded by the items in flight at each restart)"
echo "items succeeded more than once: $(sql "select count(*) from (select item_idx from $schema.attempts where outcome = 'succeeded' group by item_idx having count(*) > 1) t")"
echo "store_unavailable events: $(sql "select count(*) from $schema.events where kind = 'store_unavailable'")"
