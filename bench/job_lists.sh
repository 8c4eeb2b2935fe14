#!/usr/bin/env bash
# Lists and metrics over a store of many jobs (issue 21): `mmm jobs --limit 50`,
# `GET /api/jobs?limit=50` and `GET /metrics` (time and line count), medians of 20 runs.
#
#   bench/job_lists.sh [JOBS] [RUNNING]      default 100000 jobs, 3 of them running
#
# The store is built once by examples/many_jobs.rs in $WORK (default /tmp/mmm-job-lists-JOBS).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${1:-100000}
RUNNING=${2:-3}
WORK=${WORK:-/tmp/mmm-job-lists-$JOBS}
(cd "$here" && cargo build --release --quiet && cargo build --release --quiet --example many_jobs)
target=${CARGO_TARGET_DIR:-$here/target}
MMM=$target/release/mmm
if [ ! -e "$WORK/.mmm/mmm.db" ]; then
  echo "building a store of $JOBS jobs ($RUNNING running) in $WORK"
  "$target/release/examples/many_jobs" "$WORK" "$JOBS" "$RUNNING" >/dev/null
fi
cd "$WORK"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms_of() { # runs "$@" 20 times, prints the median wall time in ms
  for _ in $(seq 20); do
    start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
  done | median | awk '{ printf "%.1f", $1 / 1000 }'
}

echo "mmm jobs --limit 50:         $(ms_of "$MMM" jobs --limit 50) ms"
echo "mmm jobs --limit 50 --json:  $(ms_of "$MMM" jobs --limit 50 --json) ms"

port=$(( 20000 + RANDOM % 20000 ))
"$MMM" serve --port "$port" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/api/jobs?limit=1" >/dev/null && break; sleep 0.1; done
curl_ms() { for _ in $(seq 20); do curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$1"; done | median | awk '{ printf "%.1f", $1 * 1000 }'; }
echo "GET /api/jobs?limit=50:      $(curl_ms '/api/jobs?limit=50') ms"
echo "GET /metrics:                $(curl_ms /metrics) ms, $(curl -fs "http://127.0.0.1:$port/metrics" | wc -l) lines"
