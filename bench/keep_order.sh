#!/usr/bin/env bash
# keep_order.sh - the memory `mmm run -k` holds when one early item is slow (issue 18).
#
# usage: bench/keep_order.sh [N] [J] [W]
#   N  items (default 100000), J agents (default 4), W the window (default N)
#
# Item 1 waits until item W has run, so with -k the output of the items up to W must be held
# until item 1 ends: the out-of-order window is W items (the whole job by default). The same run without -k
# is the baseline. Prints the peak RSS of mmm for both (GNU time's %M) and checks that -k
# printed every line in input order. Set MMM to a binary to skip the build.
set -euo pipefail

N=${1:-100000}
J=${2:-4}
W=${3:-$N}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MMM:-}" ]; then
  (cd "$here" && cargo build --release --quiet)
  MMM=$here/target/release/mmm
fi
[ -x /usr/bin/time ] || { echo "GNU time not found: apt-get install -y time" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keep_order.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
seq "$N" > "$WORK/items"
cd "$WORK"
CMD="if [ {} = 1 ]; then while [ ! -e last.done ]; do sleep 0.05; done; fi; echo {}; if [ {} = $W ]; then touch last.done; fi"

echo "# keep_order.sh N=$N J=$J W=$W cpus=$(nproc) $(date -u +%FT%TZ); $("$MMM" --version)"
for mode in plain keep; do
  rm -rf store last.done
  flags=()
  [ "$mode" = keep ] && flags=(-k)
  start=$(date +%s%N)
  /usr/bin/time -f "%M" -o rss "$MMM" --store store run -j "$J" --progress none "${flags[@]}" \
    --input items -- "$CMD" > out 2>/dev/null
  end=$(date +%s%N)
  lines=$(wc -l < out)
  ordered=no
  if cmp -s out items; then ordered=yes; fi
  printf '%-6s peak RSS %7d KiB  %6.1f s  %d lines  in input order: %s\n' \
    "$mode" "$(cat rss)" "$(( (end - start) / 1000000 ))e-3" "$lines" "$ordered"
done
