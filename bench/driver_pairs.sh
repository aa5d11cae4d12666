#!/usr/bin/env bash
# One workload of afterward's bench driver, several source trees side by side: the
# driver's JSON line per run, rounds interleaved (every tree once, then again in reverse
# order, so a machine that drifts weighs on every tree alike).
#
#   bench/driver_pairs.sh STORE ROUNDS WORKLOAD TREE [TREE...]
#   bench/driver_pairs.sh redis 6 enqueue_bulk /tmp/old-worktree .
#
# STORE is sqlite, postgres or redis (a fresh one per run, `bench.stores`: a schema or key
# prefix, where bench.compare gives each system its own database); WORKLOAD is one of
# `bench/peers/driver.py`'s, at bench.compare's full size and budget (AW_PAIRS_N overrides
# the size, AW_PAIRS_PROCESSES gives `throughput` more worker processes). Each TREE is a
# checkout of this repository (a `git worktree` of another commit): its own driver and
# src/ run, with this repository's .venv. Give an even ROUNDS.
set -euo pipefail
if (($# < 4)); then echo "usage: $0 STORE ROUNDS WORKLOAD TREE [TREE...]" >&2; exit 2; fi
store=$1; rounds=$2; workload=$3; shift 3
source "$(dirname "$0")/pairs.sh"
trap end_run EXIT
one() {
    local tree; tree=$(cd "$1" && pwd)
    d=$(mktemp -d)
    url=$(fresh_store "$store" "$d")
    local n; n=${AW_PAIRS_N:-$(bench "import sys; from bench.compare import FULL; \
print(FULL[sys.argv[1]])" "$workload")}
    local out
    out=$(cd "$tree" && PYTHONPATH="$tree/src" AFTERWARD_LOG_LEVEL=WARNING timeout 900 \
        "$venv/bin/python" bench/peers/driver.py afterward "$workload" --url "$url" \
        --ledger "$d/ledger" --n "$n" --processes "${AW_PAIRS_PROCESSES:-1}" --budget 30 2>"$d/stderr" | tail -1) \
        || true
    if [[ -z $out ]]; then out="failed"; cat "$d/stderr" >&2; fi
    echo "$store $tree $workload: $out"
    end_run
}
alternate "$rounds" one "$@"
