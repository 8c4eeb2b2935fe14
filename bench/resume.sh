#!/usr/bin/env bash
# resume.sh - how fast `mmm resume` gets going on a large interrupted job.
#
# usage: bench/resume.sh [ITEMS]   (default 1000000)
#
# Builds a store holding one job of ITEMS items interrupted at 50% (examples/big_store.rs),
# then times `mmm resume` from its start to the first dispatched item (the item's command
# writes a timestamp), stops it with SIGINT, and reports the resume's peak memory (max RSS).
set -euo pipefail
N=${1:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && cargo build --release --quiet --example big_store && cargo build --release --quiet)
MMM=$here/target/release/mmm
WORK=$(mktemp -d "${TMPDIR:-/tmp}/resume.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s%N)
job=$("$here/target/release/examples/big_store" "$WORK" "$N")
t1=$(date +%s%N)
echo "# resume.sh N=$N: store built in $(( (t1 - t0) / 1000000 )) ms ($(du -sh "$WORK/.mmm" | cut -f1)); job $job"
cd "$WORK"
start=$(date +%s%N)
"$MMM" resume "$job" --progress none --grace 0s 2>"$WORK/err" &
pid=$!
while [ ! -s first.ts ]; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "mmm resume ended before dispatching:" >&2; cat "$WORK/err" >&2; exit 1; fi
  sleep 0.005
done
first=$(cat first.ts)
hwm_first=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
# Let it run a while (the rest of the unfinished items are paged in meanwhile), then stop it.
sleep "${RUN_FOR:-5}"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -INT "$pid"
wait "$pid" || true
echo "time from mmm resume to the first dispatched item: $(( (first - start) / 1000000 )) ms (target <= 1000)"
echo "peak memory (VmHWM) of mmm resume: $(( hwm_first / 1024 )) MiB at the first item, $(( hwm / 1024 )) MiB after ${RUN_FOR:-5} s (target <= 256)"
head -2 "$WORK/err"
