"""afterward beside its peers: one harness, the same machine, servers and workload, one run.

    .venv/bin/python -m bench.compare [--rounds 3] [--quick] [--only afterward --only arq ...]
                                      [--workload throughput ...] [--variant tuned]
                                      [--out docs/benchmarks.md]

Installs each peer, pinned, into its own virtualenv under ``.bench/venvs/`` (once), starts
nothing but uses the local PostgreSQL and Redis, and runs every workload for afterward (each
store) and each peer, each at two variants: its documented defaults, and one tuned setting
stated in `SYSTEMS`. The rounds are interleaved (every system and variant once per round),
so a slow moment of the machine hits all of them. Writes the tables (median round, min-max) to
``docs/benchmarks.md``, the raw figures to ``docs/benchmarks.json`` and the plots as PNG
beside them. Each run is `bench/peers/driver.py` in the system's own virtualenv; every task
is a no-op that appends one line to a ledger file (the same cost for everyone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .runs import Run, Stores, floors_round, systems_round, web_round
from .systems import SYSTEMS, VARIANTS
from .venvs import versions

ROOT = Path(__file__).resolve().parents[1]


FULL = {"enqueue_one": 2000, "enqueue_bulk": 20_000, "throughput": 20_000, "latency": 200}
QUICK = {"enqueue_one": 300, "enqueue_bulk": 2000, "throughput": 2000, "latency": 50}
WORKLOADS = (
    "enqueue_one",
    "enqueue_bulk",
    "throughput_1",
    "throughput_2",
    "latency",
    "web",
    "floors",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", action="append", help="systems to run (default: all)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument(
        "--variant", action="append", choices=VARIANTS, help="variants to run (default: both)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    systems = [s for s in SYSTEMS if not args.only or s.name in args.only]
    workloads = args.workload or list(WORKLOADS)
    variants = args.variant or list(VARIANTS)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: list[Run] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = Stores(Path(tmp))
        for n in range(1, args.rounds + 1):
            for workload in workloads:
                if workload == "web":
                    runs += web_round(n, Path(tmp), 5.0 if args.quick else 10.0, failures, systems)
                    continue
                if workload == "floors":
                    runs += floors_round(n, sizes, stores, failures)
                    continue
                runs += systems_round(n, workload, systems, variants, sizes, stores, failures)
    meta = {
        "date": started,
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        "command": "python -m bench.compare " + " ".join(sys.argv[1:]),
        "sizes": sizes,
        "versions": {s.name: versions(s) for s in systems},
        "settings": {
            s.name: {"defaults": s.defaults, "tuned": s.setting, "why": s.why} for s in systems
        },
        "failures": failures,
    }
    data = {"meta": meta, "runs": [asdict(r) for r in runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    from .report import write_report

    write_report(data, args.out, plots=not args.no_plots)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
