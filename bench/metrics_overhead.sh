#!/usr/bin/env bash
# metrics_overhead.sh - what the whole metrics path (tracker, rolling window, duration model,
# ETA, alerts, CPU/RSS sampling, snapshots, events, durable store) costs on real work: mmm
# running N x `sleep 0.01` at -j J beside xargs running the same shell command, in one run.
#
# usage: bench/metrics_overhead.sh [N] [J] [REPS]   (defaults 500 2 7)
#
# Both run `/bin/sh -c 'sleep 0.01'` once per item: mmm from a job file (its steps run through
# sh), xargs with `sh -c 'sleep 0.01' _ ITEM`. Each round runs both tools, mmm first in odd
# rounds and xargs first in even ones, so load drift on a noisy machine and whatever one run
# leaves behind for the next (dirty pages, a warm cache) hit both alike; medians and the ratio
# mmm/xargs are printed. Set MMM to a binary to skip the release build.
set -euo pipefail

N=${1:-500}
J=${2:-2}
REPS=${3:-7}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/metrics.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
seq "$N" > "$WORK/items"
cat > "$WORK/job.yml" <<YAML
map:
  input: items
  max_parallel: $J
  steps:
    - shell: sleep 0.01
YAML

now() { date +%s.%N; }
run_mmm() {
  rm -rf "$WORK/.mmm"
  local t0 t1
  t0=$(now)
  (cd "$WORK" && "$MMM" run job.yml --progress none --quiet >/dev/null)
  t1=$(now)
  MMM_T+=("$(echo "$t1 - $t0" | bc)")
}
run_xargs() {
  local t0 t1
  t0=$(now)
  xargs -P "$J" -n 1 sh -c 'sleep 0.01' _ < "$WORK/items"
  t1=$(now)
  XARGS_T+=("$(echo "$t1 - $t0" | bc)")
}
declare -a MMM_T XARGS_T
for round in $(seq "$REPS"); do
  if (( round % 2 )); then run_mmm; run_xargs; else run_xargs; run_mmm; fi
  echo "round $round: mmm ${MMM_T[-1]} s, xargs ${XARGS_T[-1]} s" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m=$(median "${MMM_T[@]}")
x=$(median "${XARGS_T[@]}")
echo "items=$N j=$J rounds=$REPS"
echo "xargs  median ${x} s"
echo "mmm    median ${m} s"
echo "ratio  mmm/xargs $(echo "scale=3; $m / $x" | bc)"
# Rounds are paired (both tools, a moment apart): the median of the rounds' own ratios
# is less sensitive to load that drifts across the run than the ratio of the two medians.
ratios=()
for i in "${!MMM_T[@]}"; do ratios+=("$(echo "scale=6; ${MMM_T[$i]} / ${XARGS_T[$i]}" | bc)"); done
echo "median of the rounds' ratios $(median "${ratios[@]}" | awk '{printf "%.3f", $1}')"
