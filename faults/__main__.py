"""Run the fault suite and print its table.

    python -m faults                         # every experiment, every store, CI size
    python -m faults --size full             # the full-size run published in docs/
    python -m faults --store redis --only zombie

Exits non-zero if any experiment lost a task or failed one of its checks.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from .experiments import EXPERIMENTS, as_list
from .harness import STORES, Result, drop_store, markdown, show
from .sizes import CI, FULL


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["ci", "full"], default="ci")
    parser.add_argument("--store", action="append", choices=STORES)
    parser.add_argument("--only", action="append", choices=sorted(EXPERIMENTS))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    size = FULL if args.size == "full" else CI
    results: list[Result] = []
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    for name in args.only or list(EXPERIMENTS):
        for kind in args.store or STORES:
            with tempfile.TemporaryDirectory() as tmp:
                outcome, urls = EXPERIMENTS[name](kind, Path(tmp), size)
                for url in urls:
                    drop_store(url)
            for result in as_list(outcome):
                results.append(result)
                verdict = "ok" if result.ok else "FAILED"
                print(f"{result.experiment} [{kind}]: {verdict}", flush=True)
    show(results)
    footer = (
        f"{started} UTC, {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"size={size.name}, command: `python -m faults {' '.join(sys.argv[1:])}`"
    )
    print(footer)
    if args.markdown:
        args.markdown.write_text(markdown(results) + "\n" + footer + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
