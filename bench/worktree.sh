#!/usr/bin/env bash
# worktree.sh - per-item cost of `map.isolation: worktree` (issue 9).
#
# usage: bench/worktree.sh [ITEMS] [RUNS]   (defaults 200 and 3)
#
# Generates a repository of 5,000 files (10 MB, 2 KiB each, in 50 folders), then runs the same
# job of ITEMS items, each writing and committing a file of its own, twice: in the shared
# repository (isolation none) and with worktree isolation, at -j1 so the difference is the
# isolation's own work (reset + clean of the worktree, merge through the queue), not
# parallelism. Each is run RUNS times on a fresh copy of the repository; the medians are
# reported, with the per-item overhead (isolated - shared) / ITEMS, and the one-time pool
# setup (the worktree checkouts) from the job's events. A last run at -j4 shows throughput.
# Set MMM to use another binary (default: target/release/mmm, built first).
set -euo pipefail
N=${1:-200}
RUNS=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/worktree-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The repository: 5,000 files of 2 KiB.
mkdir -p "$WORK/template"
cd "$WORK/template"
git init --quiet -b main
git config user.email bench@example.com
git config user.name bench
block=$(head -c 1536 /dev/urandom | base64 -w 0 | head -c 2047)
for d in $(seq -w 1 50); do
  mkdir -p "src/d$d"
  for f in $(seq -w 1 100); do printf '%s\n' "$block" > "src/d$d/f$f.txt"; done
done
printf '.mmm/\nitems.txt\n*.yml\n' > .gitignore
git add -A && git commit --quiet -m init
seq 1 "$N" > items.txt
step='echo ${item} > "new-${item}.txt" && git add "new-${item}.txt" && git commit --quiet -m "item ${item}"'
for mode in none worktree; do
  cat > "job-$mode.yml" <<YML
name: bench-$mode
map:
  input: items.txt
  max_parallel: 1
  isolation: $mode
  steps:
    - shell: '$step'
YML
done
echo "# worktree.sh: $(git ls-files | wc -l) files, $(du -sh --apparent-size --exclude=.git . | cut -f1) in the tree; $N items; $RUNS runs each; $("$MMM" --version)"

run() { # mode jobs -> wall ms
  rm -rf "$WORK/repo" && cp -a "$WORK/template" "$WORK/repo" && cd "$WORK/repo"
  local t0 t1
  t0=$(date +%s%N)
  "$MMM" run "job-$1.yml" -j "$2" --progress none -q
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for mode in none worktree; do
  : > "$WORK/$mode.ms"
  for _ in $(seq 1 "$RUNS"); do run "$mode" 1 >> "$WORK/$mode.ms"; done
done
setup_ms=$(cd "$WORK/repo" && "$MMM" events "$("$MMM" jobs --json | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -1)" --json \
  | grep -o '"setup_ms":[0-9]*' | head -1 | cut -d: -f2)
none=$(median < "$WORK/none.ms")
iso=$(median < "$WORK/worktree.ms")
j4=$(run worktree 4)
commits=$(cd "$WORK/repo" && git rev-list --count --no-merges "$(git branch --list 'mmm/*' --format='%(refname:short)')" ^main)
echo "isolation none, -j1:      median $none ms  ($(awk "BEGIN {printf \"%.1f\", $none / $N}") ms/item)"
echo "isolation worktree, -j1:  median $iso ms  ($(awk "BEGIN {printf \"%.1f\", $iso / $N}") ms/item; pool setup ${setup_ms:-?} ms)"
echo "overhead per item:        $(awk "BEGIN {printf \"%.1f\", ($iso - $none) / $N}") ms  (includes the one-time pool setup spread over $N items)"
echo "overhead per item, without the one-time pool setup: $(awk "BEGIN {printf \"%.1f\", ($iso - ${setup_ms:-0} - $none) / $N}") ms"
echo "isolation worktree, -j4:  $j4 ms  ($(awk "BEGIN {printf \"%.0f\", $N * 1000 / $j4}") items/s; $commits item commits on the branch)"
