#!/usr/bin/env bash
# scale_out.sh - items/s of one job shared by a coordinator and 3 workers on one PostgreSQL
# store, beside the same job on SQLite, and the workers' claim latency.
#
# usage: bench/scale_out.sh [N] [REPS]
#   N     items (default 5000), each running `true`
#   REPS  rounds (default 5); each round runs every setup once, in turn, so that load drift
#         on a noisy machine hits all alike; medians are reported
#
# Setups, all on this host, 8 agents in all unless said:
#   pg 1+3    `mmm run -j 2` (the coordinator) + 3 x `mmm worker -j 2`, PostgreSQL store
#   pg 1      `mmm run -j 8` alone on the PostgreSQL store (claims, no workers)
#   sqlite    `mmm run -j 8` on a fresh SQLite store (in-memory queue, no claims)
# Time is the coordinator's wall time, from its start to its exit (setup, map and reduce).
# Claim latency: each worker prints the p50/p99 of its claims; the table shows the median
# over rounds of the worst worker's p99.
#
# PostgreSQL: MMM_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); each
# round uses a fresh schema, dropped after. Set MMM to a binary to skip the release build.
set -euo pipefail

N=${1:-5000}
REPS=${2:-5}
PG=${MMM_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
command -v psql >/dev/null || { echo "psql not found (needed to drop the bench schemas)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/scale_out.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
seq "$N" > "$WORK/items"
cd "$WORK"

now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
drop() { psql -q "$PG" -c "DROP SCHEMA IF EXISTS $1 CASCADE" >/dev/null 2>&1 || true; }

# pg_round WORKERS CORD_J: prints "SECONDS WORST_P99_MS"
pg_round() {
  local workers=$1 cj=$2 schema="bench_so_$$_$RANDOM" url
  url="$PG?schema=$schema"
  drop "$schema"
  pids=()
  for w in $(seq "$workers"); do
    "$MMM" worker --store "$url" -j 2 --name "w$w" 2> "worker$w.log" &
    pids+=($!)
  done
  local start end
  start=$(now)
  "$MMM" run -q -j "$cj" --store "$url" --input items -- true
  end=$(now)
  # Workers print their claim figures once the map is done; then stop them.
  for w in $(seq "$workers"); do
    for _ in $(seq 100); do grep -q "claim latency" "worker$w.log" && break; sleep 0.1; done
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
  local p99=0
  if [ "$workers" -gt 0 ]; then
    p99=$(grep -ho "p99 [0-9.]* ms" worker*.log | awk '{ print $2 }' | sort -g | tail -1)
  fi
  rm -f worker*.log
  drop "$schema"
  echo "$(echo "$end - $start" | bc -l) ${p99:-nan}"
}

sqlite_round() {
  rm -rf store
  local start end
  start=$(now)
  "$MMM" run -q -j 8 --store store --input items -- true
  end=$(now)
  echo "$end - $start" | bc -l
}

: > pg13; : > pg1; : > sq; : > p99
for r in $(seq "$REPS"); do
  read -r t p < <(pg_round 3 2); echo "$t" >> pg13; echo "$p" >> p99
  read -r t _ < <(pg_round 0 8); echo "$t" >> pg1
  sqlite_round >> sq
  echo "round $r: pg 1+3 $(tail -1 pg13)s (claim p99 $(tail -1 p99) ms), pg 1 $(tail -1 pg1)s, sqlite $(tail -1 sq)s" >&2
done

rate() { echo "$N / $1" | bc -l | xargs printf "%.0f"; }
t13=$(median < pg13); t1=$(median < pg1); tsq=$(median < sq); p=$(median < p99)
echo "$N items of \`true\`, $REPS rounds, medians ($(nproc) CPUs)"
printf "%-34s %10s %10s\n" "setup" "seconds" "items/s"
printf "%-34s %10.2f %10s\n" "pg: run -j2 + 3 workers -j2" "$t13" "$(rate "$t13")"
printf "%-34s %10.2f %10s\n" "pg: run -j8 alone" "$t1" "$(rate "$t1")"
printf "%-34s %10.2f %10s\n" "sqlite: run -j8" "$tsq" "$(rate "$tsq")"
echo "claim latency p99 (worst worker, median of rounds): $p ms"
