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
rounds=$1; app=$2; shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
bench() { (cd "$root" && "$venv/bin/python" -c "$1" "${@:2}"); }
lua=$(mktemp --suffix=.lua); echo 'wrk.method = "POST"' > "$lua"
one() {
    local tree; tree=$(cd "$1" && pwd)
    local d; d=$(mktemp -d)
    local url; url=$(bench "import sys; from pathlib import Path; from bench.stores import \
fresh_url; print(fresh_url(sys.argv[1], Path(sys.argv[2])))" "${AW_PAIRS_STORE:-sqlite}" "$d")
    (cd "$tree" && PYTHONPATH="$tree/src:$tree" AFTERWARD_URL="$url" AFTERWARD_LOG_LEVEL=WARNING \
        "$venv/bin/python" -m uvicorn "$app" --port 8766 --log-level warning --no-access-log \
        > "$d/server.log" 2>&1) &
    local pid=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null -X POST "http://127.0.0.1:8766/tasks?title=x" && break; sleep 0.2
    done
    local upid; upid=$(pgrep -P "$pid" -f uvicorn || echo "$pid")
    wrk -t2 -c32 -d3s -s "$lua" "http://127.0.0.1:8766/tasks?title=x" > /dev/null
    local t0; t0=$(awk '{print $14+$15}' "/proc/$upid/stat")
    wrk -t2 -c32 -d8s --latency -s "$lua" "http://127.0.0.1:8766/tasks?title=x" > "$d/wrk.txt"
    local t1; t1=$(awk '{print $14+$15}' "/proc/$upid/stat")
    local n; n=$(awk '/requests in/ {print $1}' "$d/wrk.txt")
    local rps; rps=$(awk '/Requests\/sec/ {print $2}' "$d/wrk.txt")
    local p99; p99=$(awk '$1 == "99%" {print $2}' "$d/wrk.txt")
    local hz; hz=$(getconf CLK_TCK)
    echo "$tree $app: $rps req/s, p99 $p99, $(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" \
        'BEGIN {printf "%.3f", (b - a) / hz * 1000 / n}') ms CPU/request"
    kill "$upid" "$pid" 2>/dev/null || true
    # A server that does not stop on SIGTERM within 10 s is killed (an old tree may hang).
    for _ in $(seq 50); do kill -0 "$upid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$upid" "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$d"
    bench "import sys; from bench.stores import drop; drop(sys.argv[1])" "$url"
}
# Every other round runs the trees in reverse order (A B, B A, ...): a machine that slows
# or speeds up over the minutes then weighs on every tree alike.
reversed=(); for tree in "$@"; do reversed=("$tree" "${reversed[@]}"); done
for round in $(seq "$rounds"); do
    if ((round % 2)); then order=("$@"); else order=("${reversed[@]}"); fi
    for tree in "${order[@]}"; do one "$tree"; done
done
rm -f "$lua"
