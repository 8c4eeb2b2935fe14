#!/usr/bin/env bash
# `mmm stats` over a store of many finished jobs (issue 22): the first call (which summarises
# every job and keeps the summaries), then the median of 20 calls reading the kept summaries.
#
#   bench/stats.sh [JOBS] [ITEMS]      default 10000 jobs of 20 items
#
# The store is built once by examples/stats_jobs.rs in $WORK (default /tmp/mmm-stats-JOBS).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${1:-10000}
ITEMS=${2:-20}
WORK=${WORK:-/tmp/mmm-stats-$JOBS}
(cd "$here" && cargo build --release --quiet && cargo build --release --quiet --example stats_jobs)
target=${CARGO_TARGET_DIR:-$here/target}
MMM=$target/release/mmm
if [ ! -e "$WORK/.mmm/mmm.db" ]; then
  echo "building a store of $JOBS jobs of $ITEMS items in $WORK"
  "$target/release/examples/stats_jobs" "$WORK" "$JOBS" "$ITEMS" >/dev/null
  fresh=1
fi
cd "$WORK"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms() { # runs "$@" once, prints its wall time in ms
  start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
  awk -v us=$(( (end - start) / 1000 )) 'BEGIN { printf "%.1f", us / 1000 }'
}

cpu() { # runs "$@" 20 times, prints the median CPU time (task-clock) in ms; needs perf
  for _ in $(seq 20); do perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | cut -d, -f1; done |
    median | awk '{ printf "%.1f", $1 }'
}

# 31 days: the store's jobs span the 30 days before it was built.
if [ -n "${fresh:-}" ]; then
  echo "mmm stats --since 31d, first call (summarises $JOBS jobs): $(ms "$MMM" stats --since 31d) ms"
fi
echo "mmm stats --since 31d:         $(for _ in $(seq 20); do ms "$MMM" stats --since 31d; echo; done | median) ms"
echo "mmm stats --since 31d --json:  $(for _ in $(seq 20); do ms "$MMM" stats --since 31d --json; echo; done | median) ms"
echo "mmm stats --since 1d:          $(for _ in $(seq 20); do ms "$MMM" stats --since 1d; echo; done | median) ms"
if command -v perf >/dev/null; then
  echo "CPU time, --since 31d:         $(cpu "$MMM" stats --since 31d) ms"
  echo "CPU time, --since 1d:          $(cpu "$MMM" stats --since 1d) ms"
fi
echo "jobs in the period: $("$MMM" stats --since 31d --json | grep -o '"runs": [0-9]*' | awk '{ s += $2 } END { print s }')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
