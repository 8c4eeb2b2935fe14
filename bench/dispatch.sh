#!/usr/bin/env bash
# dispatch.sh - how fast mmm dispatches tiny items, beside xargs and GNU parallel, in one run.
#
# usage: bench/dispatch.sh [N] [J] [REPS] [CMD...]
#   N     items (default 2000), the integers 1..N
#   J     parallel workers (default 2)
#   REPS  rounds (default 7); each round runs every tool once, in turn, so that load drift
#         on a noisy machine hits all tools alike; medians are reported
#   CMD   the command per item (default: true); the item is appended as its last argument,
#         as xargs -n 1 and GNU parallel do (so `sleep 0.01` would sleep 0.01 + ITEM seconds)
#
# mmm runs as a user would run it: every item durably recorded in a fresh SQLite store, the
# tracker and the (plain, non-TTY) progress view on. Set MMM to a binary to skip the build.
# MMM_FORMS adds the one-liner's other forms as tools of their own (issue 18), e.g.
# MMM_FORMS="args stdin keep": `::: 1 2 ...` (args), the items piped in (stdin), and
# `-k ::: ...` (keep); `nologs` (issue 20): the same run as `mmm` with `--logs none`, so that
# the cost of keeping every item's output (logs on, the default) is read beside it, e.g.
# MMM_FORMS=nologs bench/dispatch.sh 2000 2 7 echo.
# If ../shared/bench/spawn-limit is there, it is built into target/ and its plain Rust spawn
# loop is timed too: the practical floor for process dispatch on this machine.
set -euo pipefail

N=${1:-2000}
J=${2:-2}
REPS=${3:-7}
shift $(( $# >= 3 ? 3 : $# ))
if [ $# -eq 0 ]; then set -- true; fi
CMD=("$@")

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
command -v parallel >/dev/null || { echo "GNU parallel not found: apt-get install -y parallel" >&2; exit 1; }
SPAWN_LIMIT=$here/target/spawn-limit/release/spawn-limit
if [ ! -x "$SPAWN_LIMIT" ] && [ -f "$here/../shared/bench/spawn-limit/Cargo.toml" ]; then
  cargo build --release --quiet --manifest-path "$here/../shared/bench/spawn-limit/Cargo.toml" \
    --target-dir "$here/target/spawn-limit" || true
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dispatch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
seq "$N" > "$WORK/items"

run_xargs()    { xargs -P "$J" -n 1 "${CMD[@]}" < "$WORK/items"; }
run_parallel() { parallel -j "$J" "${CMD[@]}" < "$WORK/items"; }
run_mmm()      { rm -rf "$WORK/store"; "$MMM" --store "$WORK/store" run -j "$J" --progress plain \
                   --input "$WORK/items" -- "${CMD[@]}" 2>/dev/null; }
run_mmm_args()  { rm -rf "$WORK/store"; "$MMM" --store "$WORK/store" run -j "$J" --progress plain \
                    -- "${CMD[@]}" ::: $(cat "$WORK/items") 2>/dev/null; }
run_mmm_stdin() { rm -rf "$WORK/store"; "$MMM" --store "$WORK/store" run -j "$J" --progress plain \
                    -- "${CMD[@]}" < "$WORK/items" 2>/dev/null; }
run_mmm_keep()  { rm -rf "$WORK/store"; "$MMM" --store "$WORK/store" run -j "$J" --progress plain \
                    -k -- "${CMD[@]}" ::: $(cat "$WORK/items") 2>/dev/null; }
run_mmm_nologs() { rm -rf "$WORK/store"; "$MMM" --store "$WORK/store" run -j "$J" --progress plain \
                    --logs none --input "$WORK/items" -- "${CMD[@]}" 2>/dev/null; }
run_spawn()    { "$SPAWN_LIMIT" "$N" "$J" --pgroup "${CMD[@]}" item 2>/dev/null; }

TOOLS=(xargs parallel mmm)
for form in ${MMM_FORMS:-}; do TOOLS+=("mmm_$form"); done
[ -x "$SPAWN_LIMIT" ] && TOOLS+=(spawn)

declare -A TIMES
now_ns() { date +%s%N; }
echo "# dispatch.sh N=$N J=$J REPS=$REPS CMD=${CMD[*]} cpus=$(nproc) $(date -u +%FT%TZ)"
echo "# $("$MMM" --version); $(parallel --version 2>/dev/null | head -1); $(xargs --version | head -1)"
run_xargs >/dev/null; run_mmm >/dev/null   # warm-up: page cache, binaries
for ((r = 1; r <= REPS; r++)); do
  for t in "${TOOLS[@]}"; do
    t0=$(now_ns)
    if ! "run_$t" >/dev/null; then echo "!! $t failed in round $r" >&2; fi
    t1=$(now_ns)
    TIMES[$t]+="$(( (t1 - t0) / 1000 )) "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2 }'; }
x=$(echo "${TIMES[xargs]}" | median)
m=$(echo "${TIMES[mmm]}" | median)
printf '%-16s %10s %10s %12s\n' tool median_s items/s x_xargs_time
for t in "${TOOLS[@]}"; do
  med=$(echo "${TIMES[$t]}" | median)
  name=$t; [ "$t" = spawn ] && name=spawn-limit
  awk -v n="$name" -v med="$med" -v items="$N" -v x="$x" \
    'BEGIN { printf "%-16s %10.3f %10.1f %12.2f\n", n, med / 1e6, items / (med / 1e6), med / x }'
done
p=$(echo "${TIMES[parallel]}" | median)
awk -v m="$m" -v x="$x" -v p="$p" 'BEGIN {
  printf "mmm time / xargs time: %.2f (target <= 0.60); GNU parallel time / mmm time: %.1fx (target >= 4)\n", m / x, p / m }'
if [ -n "${TIMES[mmm_nologs]:-}" ]; then
  nl=$(echo "${TIMES[mmm_nologs]}" | median)
  awk -v m="$m" -v nl="$nl" 'BEGIN {
    printf "logs on (mmm) / logs: none (mmm_nologs): %+.1f%% (target within 3%%)\n", (m / nl - 1) * 100 }'
fi
