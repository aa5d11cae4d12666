#!/usr/bin/env bash
# The lesson's /tasks endpoint, several source trees side by side: req/s, p99 latency and
# server CPU per request, rounds interleaved (every tree once, then again in reverse order).
#
#   bench/web_pairs.sh ROUNDS APP TREE [TREE...]
#   bench/web_pairs.sh 4 bench.web_apps:afterward /tmp/old-worktree .
#
# Each TREE is a checkout of this repository (a `git worktree` of another commit); its own
# src/ is imported (PYTHONPATH), with this repository's .venv. Per run: uvicorn on TREE's
# APP with a fresh store of AW_PAIRS_STORE (sqlite, postgres or redis; `bench.stores`),
# afterward logging at WARNING; wrk -t2 -c32 POST for 3 s of warm-up and an 8 s window;
# server CPU is utime+stime of the uvicorn process over the window (/proc/PID/stat).
# Needs wrk and curl.
set -euo pipefail
if (($# < 3)); then echo "usage: $0 ROUNDS APP TREE [TREE...]" >&2; exit 2; fi
rounds=$1; app=$2; shift 2
source "$(dirname "$0")/pairs.sh"
lua=$(mktemp --suffix=.lua); echo 'wrk.method = "POST"' > "$lua"
pid=""; upid=""
stop() {
    # The server, its store and files go whether the run ended or failed; a server that
    # does not stop on SIGTERM within 10 s is killed (an old tree may hang).
    if [[ -n $pid ]]; then
        kill "$upid" "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$upid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$upid" "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    fi
    pid=""; upid=""
    end_run
}
trap 'stop; rm -f "$lua"' EXIT
one() {
    local tree; tree=$(cd "$1" && pwd)
    d=$(mktemp -d)
    url=$(fresh_store "${AW_PAIRS_STORE:-sqlite}" "$d")
    (cd "$tree" && PYTHONPATH="$tree/src:$tree" AFTERWARD_URL="$url" AFTERWARD_LOG_LEVEL=WARNING \
        "$venv/bin/python" -m uvicorn "$app" --port 8766 --log-level warning --no-access-log \
        > "$d/server.log" 2>&1) &
    pid=$!; upid=$pid
    local ready=""
    for _ in $(seq 50); do
        curl -s -o /dev/null -X POST "http://127.0.0.1:8766/tasks?title=x" && ready=1 && break
        sleep 0.2
    done
    if [[ -z $ready ]]; then echo "$tree: the server did not answer:" >&2; cat "$d/server.log" >&2; exit 1; fi
    upid=$(pgrep -P "$pid" -f uvicorn || echo "$pid")
    wrk -t2 -c32 -d3s -s "$lua" "http://127.0.0.1:8766/tasks?title=x" > /dev/null
    local t0; t0=$(awk '{print $14+$15}' "/proc/$upid/stat")
    wrk -t2 -c32 -d8s --latency -s "$lua" "http://127.0.0.1:8766/tasks?title=x" > "$d/wrk.txt"
    local t1; t1=$(awk '{print $14+$15}' "/proc/$upid/stat")
    local n; n=$(awk '/requests in/ {print $1}' "$d/wrk.txt")
    local rps; rps=$(awk '/Requests\/sec/ {print $2}' "$d/wrk.txt")
    # wrk prints a latency in us, ms or s: shown in ms
    local p99; p99=$(awk '$1 == "99%" {v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u);
        printf "%.2f", u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v)}' "$d/wrk.txt")
    local hz; hz=$(getconf CLK_TCK)
    echo "$tree $app: $rps req/s, p99 $p99 ms, $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" \
        'BEGIN {printf "%.3f", (b - a) / hz * 1000 / n}') ms CPU/request"
    stop
}
alternate "$rounds" one "$@"
