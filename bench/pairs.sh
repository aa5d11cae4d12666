# Shared by web_pairs.sh and driver_pairs.sh (sourced): stores for one run, and rounds
# that alternate the order of the trees.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
bench() { (cd "$root" && "$venv/bin/python" -c "$1" "${@:2}"); }

# A fresh, empty store of kind $1 (sqlite, postgres or redis), files under folder $2.
fresh_store() {
    bench "import sys; from pathlib import Path; from bench.stores import fresh_url; \
print(fresh_url(sys.argv[1], Path(sys.argv[2])))" "$1" "$2"
}

drop_store() { bench "import sys; from bench.stores import drop; drop(sys.argv[1])" "$1"; }

# One run's store ($url, from fresh_store) and folder ($d): a script sets them and calls
# end_run when the run ends, and from its EXIT trap if it fails.
url=""; d=""
end_run() {
    if [[ -n $url ]]; then drop_store "$url"; fi
    if [[ -n $d ]]; then rm -rf "$d"; fi
    url=""; d=""
}

# `alternate ROUNDS FUNCTION TREE...` calls FUNCTION once per tree per round. Every other
# round runs the trees in reverse order (A B, B A, ...): a machine that slows or speeds up
# over the minutes then weighs on every tree alike.
alternate() {
    local rounds=$1 fn=$2; shift 2
    local reversed=() tree round order
    for tree in "$@"; do reversed=("$tree" "${reversed[@]}"); done
    for round in $(seq "$rounds"); do
        if ((round % 2)); then order=("$@"); else order=("${reversed[@]}"); fi
        for tree in "${order[@]}"; do "$fn" "$tree"; done
    done
}
