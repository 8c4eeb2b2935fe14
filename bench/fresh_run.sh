#!/usr/bin/env bash
# fresh_run.sh - a fresh one-liner over a very large input: peak memory, time to the first
# command, and the dispatch rate beside the rate of a small run.
#
# usage: bench/fresh_run.sh [ITEMS]   (default 10000000)
#        RUN_FOR=SECONDS stops the large run after that long (SIGINT; default: to its end)
#        BASE=ITEMS      the small run's size (default 10000)
#        MMM=PATH        the binary to measure (default: a release build of this checkout)
#
# Runs `mmm run -j 2 --progress none --input FILE -- true` over BASE items, then over ITEMS
# items, each in a fresh SQLite store (release build). The rate of each is its items that
# succeeded divided by the time from its first attempt's start to its last attempt's end, read
# from the store, so a stopped run compares with a finished one. The peak memory is the large
# run's VmHWM, read from /proc while it runs. The bytes per item are those of the items,
# attempts and events tables with their indexes (sqlite3's dbstat) over the items recorded.
set -euo pipefail
N=${1:-10000000}
BASE=${BASE:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fresh_run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# succeeded attempts, first start (ms), last end (ms) of the store in the current folder
figures() {
  sqlite3 .mmm/mmm.db \
    "select count(*), min(started_at), max(ended_at) from attempts where outcome = 'succeeded'"
}
# bytes of the item records (items, attempts, events and their indexes) per item: what issue
# 21 bounds (logs, snapshots and checkpoints are counted apart)
bytes_per_item() {
  sqlite3 .mmm/mmm.db "select sum(pgsize) / (select count(*) from items) from dbstat
    where name in (select name from sqlite_master where tbl_name in ('items', 'attempts', 'events'))"
}
rate() { # count|first|last -> items/s
  awk -F'|' '{ printf "%.0f", $1 * 1000 / ($3 - $2) }' <<<"$1"
}

mkdir "$WORK/base" "$WORK/big"
seq 1 "$BASE" > "$WORK/base/in.txt"
t0=$(date +%s%N)
seq 1 "$N" > "$WORK/big/in.txt"
t1=$(date +%s%N)
echo "# fresh_run.sh ITEMS=$N BASE=$BASE: input written in $(( (t1 - t0) / 1000000 )) ms ($(du -h "$WORK/big/in.txt" | cut -f1))"

cd "$WORK/base"
"$MMM" run -j 2 --progress none --input in.txt -- true
base=$(figures)
echo "small run ($BASE items): $(rate "$base") items/s, $(bytes_per_item) bytes of item records per item (target <= 300), store $(du -h .mmm/mmm.db | cut -f1)"

cd "$WORK/big"
start=$(date +%s%N)
"$MMM" run -j 2 --progress none --input in.txt -- true 2>"$WORK/err" &
pid=$!
hwm=0
while kill -0 "$pid" 2>/dev/null; do
  now=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ "${now:-0}" -gt "$hwm" ] && hwm=$now
  if [ -n "${RUN_FOR:-}" ] && [ $(( ($(date +%s%N) - start) / 1000000000 )) -ge "$RUN_FOR" ]; then
    kill -INT "$pid"
    break
  fi
  sleep 1
done
wait "$pid" || true
end=$(date +%s%N)
big=$(figures)
first_ms=$(awk -F'|' -v s="$start" '{ printf "%d", $2 - s / 1000000 }' <<<"$big")
echo "large run ($N items): $(cut -d'|' -f1 <<<"$big") items done in $(( (end - start) / 1000000000 )) s, $(rate "$big") items/s"
echo "  first command started $first_ms ms after mmm run (target <= 1000)"
echo "  peak memory (VmHWM) $(( hwm / 1024 )) MiB (target <= 128)"
echo "  rate vs the small run: $(awk -v a="$(rate "$big")" -v b="$(rate "$base")" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }') (target within 5%)"
if [ -z "${RUN_FOR:-}" ]; then
  echo "  store: $(du -h .mmm/mmm.db | cut -f1), $(bytes_per_item) bytes of item records per item"
fi
head -3 "$WORK/err"
