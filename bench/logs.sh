#!/usr/bin/env bash
# logs.sh - item logs (issue 20): how fast one item's output reaches the store, beside the
# same command writing to a file, and how long a line takes to reach `mmm logs --follow`.
#
# usage: bench/logs.sh [SIZE_MB] [REPS] [LINES]
#   SIZE_MB  output of the single item, in MiB (default 1024)
#   REPS     rounds of the throughput comparison (default 3); medians are reported
#   LINES    lines the follow-latency item writes, one each 20 ms (default 300)
#
# Throughput: `yes LINE | head -c SIZE` as one item of `mmm run` (logs on, the default, with
# --log-cap above SIZE so every byte is kept; and with the default 64 MiB cap), beside
# `sh -c 'CMD > file'` on the same machine and disk. Latency: an item prints its own clock
# (ns) every 20 ms; `mmm logs --follow` in another process reads them, and the difference to
# the reader's clock when the line arrives is the delay (p50, p99, max).
# Set MMM to a binary to skip the build.
set -euo pipefail

SIZE_MB=${1:-1024}
REPS=${2:-3}
LINES=${3:-300}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/logs-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
BYTES=$((SIZE_MB * 1024 * 1024))
CMD="yes 'a log line of a typical length, with a number 1234567890 and some words' | head -c $BYTES"
# A job file, not a one-liner: a one-liner also shows each item's output when it ends, which
# holds it in memory; a job file's run only records it.
job() { printf 'map:\n  input: {command: "echo one"}\n  steps:\n    - shell: |\n        %s\n' "$1" > "$2"; }
job "$CMD" "$WORK/flood.yml"
job "i=0; while [ \$i -lt $LINES ]; do date +%s%N; sleep 0.02; i=\$((i + 1)); done" "$WORK/clock.yml"
now_ns() { date +%s%N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2 }'; }

echo "# logs.sh SIZE=${SIZE_MB}MiB REPS=$REPS LINES=$LINES cpus=$(nproc) $(date -u +%FT%TZ)"
echo "# $("$MMM" --version)"
declare -A T
for ((r = 1; r <= REPS; r++)); do
  t0=$(now_ns); sh -c "$CMD > $WORK/out.txt"; t1=$(now_ns)
  T[file]+="$(( (t1 - t0) / 1000 )) "
  rm -f "$WORK/out.txt"
  rm -rf "$WORK/s1"; t0=$(now_ns)
  "$MMM" --store "$WORK/s1" run "$WORK/flood.yml" --progress none --log-cap "$((SIZE_MB + 1))MiB" >/dev/null
  t1=$(now_ns); T[mmm_full]+="$(( (t1 - t0) / 1000 )) "
  kept_full=$(du -sk "$WORK/s1" | cut -f1)
  rm -rf "$WORK/s2"; t0=$(now_ns)
  "$MMM" --store "$WORK/s2" run "$WORK/flood.yml" --progress none >/dev/null
  t1=$(now_ns); T[mmm_cap64]+="$(( (t1 - t0) / 1000 )) "
  kept_cap=$(du -sk "$WORK/s2" | cut -f1)
  rm -rf "$WORK/s3"; t0=$(now_ns)
  "$MMM" --store "$WORK/s3" run "$WORK/flood.yml" --progress none --logs none >/dev/null
  t1=$(now_ns); T[mmm_none]+="$(( (t1 - t0) / 1000 )) "
done
printf '%-34s %10s %10s\n' "single item, ${SIZE_MB} MiB of output" median_s MB/s
for t in file mmm_full mmm_cap64 mmm_none; do
  med=$(echo "${T[$t]}" | median)
  awk -v n="$t" -v med="$med" -v b="$BYTES" 'BEGIN { printf "%-34s %10.3f %10.1f\n", n, med / 1e6, b / 1e6 / (med / 1e6) }'
done
echo "store size: kept whole ${kept_full} KiB, default cap ${kept_cap} KiB (du -sk)"

# Follow latency.
rm -rf "$WORK/s4"
"$MMM" --store "$WORK/s4" run "$WORK/clock.yml" --progress none >/dev/null 2>&1 &
runner=$!
id=""
for _ in $(seq 1 200); do
  id=$("$MMM" --store "$WORK/s4" jobs --json 2>/dev/null | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -1) || true
  [ -n "$id" ] && break
  sleep 0.05
done
"$MMM" --store "$WORK/s4" logs "$id" --follow 2>/dev/null | while IFS= read -r line; do
  now=$(date +%s%N)
  case "$line" in *\]\ [0-9]*) echo $(( (now - ${line##* }) / 1000 )) ;; esac
done > "$WORK/lat.txt"
wait "$runner"
sort -n "$WORK/lat.txt" | awk '{a[NR]=$1} END {
  printf "follow latency over %d lines: p50 %.0f ms, p99 %.0f ms, max %.0f ms (target p99 <= 500 ms)\n",
    NR, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[NR]/1000 }'
