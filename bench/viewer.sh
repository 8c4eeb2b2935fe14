#!/usr/bin/env bash
# viewer.sh - what `mmm progress` costs while attached to a 1,000-agent job.
#
# usage: bench/viewer.sh [AGENTS] [SECONDS]   (default 1000 agents, 10 s)
#
# Starts a job of AGENTS items, each `sleep 120`, with -j AGENTS (so every agent is busy and
# nothing finishes: the only changes are the heartbeat's snapshot once a second), opens the
# viewer on it in a detached tmux terminal (200x60), and reads the viewer's CPU time from
# /proc over SECONDS. Then the same on the finished job (after stopping it). Needs tmux.
set -euo pipefail
AGENTS=${1:-1000}
SECONDS_=${2:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
MMM=${MMM:-$here/target/release/mmm}
[ -x "$MMM" ] || (cd "$here" && cargo build --release --quiet)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/viewer.XXXXXX")
session=mmm-viewer-bench-$$
cleanup() {
    tmux -L "$session" kill-server 2>/dev/null || true
    [ -n "${run_pid:-}" ] && kill -INT "$run_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # $1: label
    tmux -L "$session" new-session -d -s v -x 200 -y 60 "exec '$MMM' progress $job"
    sleep 2 # let it start and draw
    local pid
    pid=$(tmux -L "$session" list-panes -t v -F '#{pane_pid}')
    local t0 c0 t1 c1
    t0=$(date +%s%N); c0=$(cpu_ticks "$pid")
    sleep "$SECONDS_"
    t1=$(date +%s%N); c1=$(cpu_ticks "$pid")
    awk -v c=$((c1 - c0)) -v hz="$hz" -v ns=$((t1 - t0)) -v label="$1" \
        'BEGIN { printf "%s: %.2f%% of a core (%d ticks in %.1f s)\n", label, 100 * c / hz / (ns / 1e9), c, ns / 1e9 }'
    tmux -L "$session" send-keys -t v q
    sleep 0.5
    tmux -L "$session" kill-server 2>/dev/null || true
}

"$MMM" run -j "$AGENTS" --progress none -- sleep {} ::: $(yes 120 | head -n "$AGENTS") &
run_pid=$!
for _ in $(seq 1 100); do
    job=$("$MMM" jobs --json 2>/dev/null | awk -F'"' '/"short_id"/ {print $4; exit}') || true
    [ -n "${job:-}" ] && "$MMM" progress "$job" --json | grep -q '"index": '"$((AGENTS - 1))" && break
    sleep 0.2
done
echo "# viewer.sh: job $job, $AGENTS agents all busy"
measure "live job, $AGENTS agents, nothing finishing"
kill -INT "$run_pid"; wait "$run_pid" || true; run_pid=
measure "stopped job (interrupted: read every 2 s), $AGENTS agents in its last snapshot"
